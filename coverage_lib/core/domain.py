"""The physical domain of the data set: the range of every feature, per scenario where the
scenarios differ (the feature table of the book's physics page, 3GPP TR 38.901 Table 7.4.1-1's
scenario parameters). This one table feeds the generator's draws
(``physics.sampling.draw_features``), the parameter rules of the in-distribution ranges
(``datasets.dataset.PARAMETERS``), the interactive notebook's sliders and the plots' sweeps.

It is not what counts as a link (``links``): a 1000 GHz link is a link, outside this domain.
"""
from __future__ import annotations

# Scenario codes of the ``scenario`` feature.
UMA, UMI, RMA = 0, 1, 2
SCENARIO_NAMES = {UMA: "UMa", UMI: "UMi street canyon", RMA: "RMa"}

# [low, high] per scenario, for the features whose range depends on it (equal bounds: a fixed
# value). Units are in the names.
BY_SCENARIO = {
    "frequency_ghz": {UMA: (0.5, 100.0), UMI: (0.5, 100.0), RMA: (0.5, 30.0)},
    "distance_m": {UMA: (10.0, 5000.0), UMI: (10.0, 5000.0), RMA: (10.0, 10000.0)},
    "bs_height_m": {UMA: (25.0, 25.0), UMI: (10.0, 10.0), RMA: (10.0, 150.0)},
    "ue_height_m": {UMA: (1.5, 22.5), UMI: (1.5, 22.5), RMA: (1.0, 10.0)},
    "tx_power_dbm": {UMA: (40.0, 49.0), UMI: (30.0, 44.0), RMA: (40.0, 49.0)},
}
# [low, high] of the features drawn alike in every scenario.
COMMON = {
    "antenna_gain_dbi": (0.0, 25.0),
    "bandwidth_mhz": (5.0, 400.0),
    "noise_figure_db": (5.0, 13.0),
    "rain_rate_mmh": (0.0, 150.0),
    "water_vapour_gm3": (0.0, 25.0),
    "scenario": (min(SCENARIO_NAMES), max(SCENARIO_NAMES)),
    "los": (0, 1),
    "inr_db": (-10.0, 20.0),
}
BANDWIDTHS_MHZ = (5.0, 10.0, 20.0, 40.0, 50.0, 100.0, 200.0, 400.0)
# Rain: no rain with probability RAIN_FREE_FRACTION, else exponential with this mean (mm/h),
# capped at the domain's top.
RAIN_FREE_FRACTION = 0.5
RAIN_MEAN_MMH = 10.0

# Every feature's range over all scenarios.
DOMAIN = {**{feature: (min(lo for lo, _ in ranges.values()), max(hi for _, hi in ranges.values()))
             for feature, ranges in BY_SCENARIO.items()}, **COMMON}
# Units and short labels, for sliders and axes.
LABELS = {"frequency_ghz": "f [GHz]", "distance_m": "d [m]", "bs_height_m": "h_BS [m]",
          "ue_height_m": "h_UT [m]", "tx_power_dbm": "P_tx [dBm]", "antenna_gain_dbi": "G [dBi]",
          "bandwidth_mhz": "B [MHz]", "noise_figure_db": "NF [dB]",
          "rain_rate_mmh": "rain [mm/h]", "water_vapour_gm3": "ρ [g/m³]",
          "scenario": "scenario", "los": "LOS", "inr_db": "INR [dB]"}


def reference_links(frequency_ghz: float) -> "pd.DataFrame":
    """One link per scenario and LOS state at ``frequency_ghz``, 500 m apart, dry, UE at
    1.5 m (RMa: 1.5 m too) and the RMa mast at 35 m; the other features mid-range. Index:
    "UMa LOS", "UMa NLOS", …."""
    import pandas as pd

    rows, names = [], []
    for scenario, name in SCENARIO_NAMES.items():
        for los in (1, 0):
            rows.append({"frequency_ghz": frequency_ghz, "distance_m": 500.0,
                         "bs_height_m": 35.0 if scenario == RMA else BY_SCENARIO["bs_height_m"][
                             scenario][0],
                         "ue_height_m": 1.5, "tx_power_dbm": 44.0, "antenna_gain_dbi": 10.0,
                         "bandwidth_mhz": 100.0, "noise_figure_db": 9.0, "rain_rate_mmh": 0.0,
                         "water_vapour_gm3": 7.5, "scenario": scenario, "los": los,
                         "inr_db": 0.0})
            names.append(f"{name.split()[0]} {'LOS' if los else 'NLOS'}")
    return pd.DataFrame(rows, index=names)
