"""Drawing links over the physical domain (``core.domain``: the book's feature table), with
38.901's LOS probability for each drawn link."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import domain
from . import propagation


BANDWIDTHS_MHZ = np.array(domain.BANDWIDTHS_MHZ, dtype=float)


def _log_uniform(rng, low, high):
    return np.exp(np.log(low) + rng.random(np.shape(high)) * (np.log(high) - np.log(low)))


def draw_features(n_samples: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n_samples`` links over the physical domain (``domain``: the book's feature
    table), in one fixed draw order: the same generator state gives the same links."""
    n, by, common = n_samples, domain.BY_SCENARIO, domain.COMMON
    uma_, umi_, rma_ = domain.UMA, domain.UMI, domain.RMA
    scenario = rng.integers(common["scenario"][0], common["scenario"][1] + 1, n)
    uma, umi, rma = (scenario == s for s in (uma_, umi_, rma_))

    def per_row(feature, bound):  # each row's scenario's bound (0 low, 1 high)
        return np.choose(scenario, [by[feature][s][bound] for s in (uma_, umi_, rma_)])

    frequency = _log_uniform(rng, per_row("frequency_ghz", 0), per_row("frequency_ghz", 1))
    distance = _log_uniform(rng, per_row("distance_m", 0), per_row("distance_m", 1))
    # Fixed in UMa and UMi, drawn in RMa; then each draw's scenarios (one array per range).
    bs_height = np.select([uma, umi], [by["bs_height_m"][uma_][0], by["bs_height_m"][umi_][0]],
                          rng.uniform(*by["bs_height_m"][rma_], n))
    ue_height = np.where(rma, rng.uniform(*by["ue_height_m"][rma_], n),
                         rng.uniform(*by["ue_height_m"][uma_], n))
    tx_power = np.where(umi, rng.uniform(*by["tx_power_dbm"][umi_], n),
                        rng.uniform(*by["tx_power_dbm"][uma_], n))
    gain = rng.uniform(*common["antenna_gain_dbi"], n)
    bandwidth = rng.choice(BANDWIDTHS_MHZ, n)
    noise_figure = rng.uniform(*common["noise_figure_db"], n)
    rainy = rng.random(n) < 1.0 - domain.RAIN_FREE_FRACTION
    rain = np.where(rainy, np.minimum(rng.exponential(domain.RAIN_MEAN_MMH, n),
                                      common["rain_rate_mmh"][1]), 0.0)
    water_vapour = rng.uniform(*common["water_vapour_gm3"], n)
    p_los = propagation.los_probability(scenario, distance, ue_height)
    los = (rng.random(n) < p_los).astype(np.int64)
    inr = rng.uniform(*common["inr_db"], n)
    return pd.DataFrame({
        "frequency_ghz": frequency, "distance_m": distance, "bs_height_m": bs_height,
        "ue_height_m": ue_height, "tx_power_dbm": tx_power, "antenna_gain_dbi": gain,
        "bandwidth_mhz": bandwidth, "noise_figure_db": noise_figure, "rain_rate_mmh": rain,
        "water_vapour_gm3": water_vapour, "scenario": scenario.astype(np.int64), "los": los,
        "inr_db": inr,
    })
