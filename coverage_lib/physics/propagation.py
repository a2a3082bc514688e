"""Coverage physics: 3GPP TR 38.901 path loss, ITU-R P.838-3 rain, ITU-R P.676 gas, link budget.

Every formula here is the one of the book's physics page (``book/physics.md``, "Data and
physics"), which this module implements exactly. Units are in the names: frequencies in GHz,
distances and heights in m, powers in dBm, gains and losses in dB, specific attenuations in
dB/km.

All functions are numpy-vectorised: arguments broadcast against each other.
"""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from ..core import validation
from ..core.domain import BY_SCENARIO, RMA, SCENARIO_NAMES, UMA, UMI  # noqa: F401  (scenario codes)
from ..core.schema import FEATURES, TARGET_INDEX, TARGETS

SPEED_OF_LIGHT_M_PER_S = 299_792_458.0

# Range of 2-D distances searched for the coverage radius (the generator's distance range), m.
MIN_DISTANCE_M = min(low for low, _ in BY_SCENARIO["distance_m"].values())
MAX_DISTANCE_M = {scenario: high for scenario, (_, high) in BY_SCENARIO["distance_m"].items()}

# This project's stated assumptions (book, methods page); parameters with these defaults.
EDGE_SINR_DB = -6.0
IMPLEMENTATION_GAP_DB = 3.0
ASSUMPTIONS = {"edge_sinr_db": EDGE_SINR_DB, "implementation_gap_db": IMPLEMENTATION_GAP_DB}
# Spectral efficiency at the top of TS 38.214 Table 5.2.2.1-3 (CQI table 2, 256QAM), bit/s/Hz.
MAX_SPECTRAL_EFFICIENCY = 7.4063

# 38.901 Table 7.4.1-1, RMa: average building height and street width, m.
RMA_BUILDING_HEIGHT_M = 5.0
RMA_STREET_WIDTH_M = 20.0
# 38.901 Table 7.4.1-1 note 1: effective environment height for UMa/UMi, fixed at 1 m here.
ENVIRONMENT_HEIGHT_M = 1.0


def assumptions(values: dict | None = None) -> dict:
    """The two assumptions a data set is generated with, {"edge_sinr_db", "implementation_gap_db"}
    (dB): ``values`` where given (a data set records its own in ``feature_stats.json`` under
    "physics"), the defaults ``ASSUMPTIONS`` for any left out. An unknown name or a value that is
    not a finite number → ValueError.
    """
    values = dict(values or {})
    unknown = sorted(set(values) - set(ASSUMPTIONS))
    if unknown:
        raise ValueError(f"unknown physics assumption {unknown[0]!r}; known: {list(ASSUMPTIONS)}")
    for name, value in values.items():
        validation.number(name, value)
    return {name: float(values.get(name, default)) for name, default in ASSUMPTIONS.items()}


def max_distance_m(scenario):
    """Largest 2-D distance of the scenario's domain (5 km UMa/UMi, 10 km RMa), m."""
    return np.where(np.asarray(scenario) == RMA, MAX_DISTANCE_M[RMA], MAX_DISTANCE_M[UMA])


def _log10(x):
    return np.log10(np.asarray(x, dtype=float))


# --------------------------------------------------------------------------------------------
# 3GPP TR 38.901 V17, clause 7.4.1, Table 7.4.1-1: path loss models
# --------------------------------------------------------------------------------------------

def breakpoint_distance_m(scenario, frequency_ghz, bs_height_m, ue_height_m):
    """Breakpoint distance of 38.901 Table 7.4.1-1, notes 1 and 5, in m.

    UMa and UMi use d'BP = 4·h'BS·h'UT·fc/c with effective heights h' = h − hE (hE = 1 m);
    RMa uses dBP = 2π·hBS·hUT·fc/c.
    """
    scenario = np.asarray(scenario)
    f_hz = np.asarray(frequency_ghz, dtype=float) * 1e9
    h_bs = np.asarray(bs_height_m, dtype=float)
    h_ut = np.asarray(ue_height_m, dtype=float)
    urban = 4.0 * (h_bs - ENVIRONMENT_HEIGHT_M) * (h_ut - ENVIRONMENT_HEIGHT_M) * f_hz
    rural = 2.0 * np.pi * h_bs * h_ut * f_hz
    return np.where(scenario == RMA, rural, urban) / SPEED_OF_LIGHT_M_PER_S


def _path_loss_segments(scenario, los, frequency_ghz, bs_height_m, ue_height_m):
    """The 38.901 Table 7.4.1-1 formulas, rewritten per row as PL = a + b·log10(d3D) + e·d3D.

    Every LOS formula of the table has this shape on each side of the breakpoint; every NLOS
    formula is max(LOS, a_n + b_n·log10(d3D)). Returning the coefficients lets the radius
    search evaluate path loss at many distances without recomputing the frequency and height
    terms. Returns a dict of broadcast arrays: a1, b1, e1 (d2D ≤ breakpoint), a2, b2, e2
    (beyond), a_nlos, b_nlos (−inf for LOS rows) and the breakpoint ``d_bp`` in m.
    """
    scenario, los, f, h_bs, h_ut = np.broadcast_arrays(
        np.asarray(scenario), np.asarray(los), np.asarray(frequency_ghz, dtype=float),
        np.asarray(bs_height_m, dtype=float), np.asarray(ue_height_m, dtype=float))
    log_f = _log10(f)
    d_bp = breakpoint_distance_m(scenario, f, h_bs, h_ut)
    dh2 = (h_bs - h_ut) ** 2
    uma, umi, rma = scenario == UMA, scenario == UMI, scenario == RMA

    a1, b1, e1 = (np.empty(f.shape) for _ in range(3))
    a2, b2, e2 = (np.empty(f.shape) for _ in range(3))
    a_n, b_n = np.full(f.shape, -np.inf), np.zeros(f.shape)

    # UMa LOS: PL1 = 28 + 22 log d3D + 20 log fc; PL2 = 28 + 40 log d3D + 20 log fc
    #          − 9 log(d'BP² + (hBS − hUT)²).
    a1[uma], b1[uma] = 28.0 + 20.0 * log_f[uma], 22.0
    a2[uma] = 28.0 + 20.0 * log_f[uma] - 9.0 * _log10(d_bp[uma] ** 2 + dh2[uma])
    b2[uma] = 40.0
    # UMa NLOS: PL' = 13.54 + 39.08 log d3D + 20 log fc − 0.6 (hUT − 1.5).
    a_n[uma] = 13.54 + 20.0 * log_f[uma] - 0.6 * (h_ut[uma] - 1.5)
    b_n[uma] = 39.08

    # UMi street canyon LOS: PL1 = 32.4 + 21 log d3D + 20 log fc; PL2 = 32.4 + 40 log d3D
    #          + 20 log fc − 9.5 log(d'BP² + (hBS − hUT)²).
    a1[umi], b1[umi] = 32.4 + 20.0 * log_f[umi], 21.0
    a2[umi] = 32.4 + 20.0 * log_f[umi] - 9.5 * _log10(d_bp[umi] ** 2 + dh2[umi])
    b2[umi] = 40.0
    # UMi NLOS: PL' = 35.3 log d3D + 22.4 + 21.3 log fc − 0.3 (hUT − 1.5).
    a_n[umi] = 22.4 + 21.3 * log_f[umi] - 0.3 * (h_ut[umi] - 1.5)
    b_n[umi] = 35.3

    # RMa LOS: PL1(d) = 20 log(40π d fc / 3) + min(0.03 h^1.72, 10) log d − min(0.044 h^1.72,
    #          14.77) + 0.002 log(h) d; PL2 = PL1(dBP) + 40 log(d3D / dBP).
    h = RMA_BUILDING_HEIGHT_M
    a1[rma] = 20.0 * _log10(40.0 * np.pi * f[rma] / 3.0) - min(0.044 * h ** 1.72, 14.77)
    b1[rma] = 20.0 + min(0.03 * h ** 1.72, 10.0)
    e1[uma | umi] = 0.0
    e1[rma] = 0.002 * np.log10(h)
    e2[...] = 0.0
    pl1_at_bp = a1[rma] + b1[rma] * _log10(d_bp[rma]) + e1[rma] * d_bp[rma]
    a2[rma] = pl1_at_bp - 40.0 * _log10(d_bp[rma])
    b2[rma] = 40.0
    # RMa NLOS: PL' = 161.04 − 7.1 log W + 7.5 log h − (24.37 − 3.7 (h/hBS)²) log hBS
    #          + (43.42 − 3.1 log hBS)(log d3D − 3) + 20 log fc − (3.2 (log 11.75 hUT)² − 4.97).
    w, hb = RMA_STREET_WIDTH_M, h_bs[rma]
    slope = 43.42 - 3.1 * _log10(hb)
    a_n[rma] = (161.04 - 7.1 * np.log10(w) + 7.5 * np.log10(h)
                - (24.37 - 3.7 * (h / hb) ** 2) * _log10(hb) - 3.0 * slope + 20.0 * log_f[rma]
                - (3.2 * _log10(11.75 * h_ut[rma]) ** 2 - 4.97))
    b_n[rma] = slope

    a_n = np.where(np.asarray(los) == 1, -np.inf, a_n)
    return dict(a1=a1, b1=b1, e1=e1, a2=a2, b2=b2, e2=e2, a_nlos=a_n, b_nlos=b_n, d_bp=d_bp,
                dh2=dh2)


def _evaluate_path_loss(seg, distance_m):
    """Path loss (dB) of precomputed segments at 2-D distance ``distance_m``; also d3D (m)."""
    d3d = np.sqrt(distance_m ** 2 + seg["dh2"])
    log_d3d = np.log10(d3d)
    before = distance_m <= seg["d_bp"]  # 38.901 compares the 2-D distance with the breakpoint
    pl_los = np.where(before, seg["a1"] + seg["b1"] * log_d3d + seg["e1"] * d3d,
                      seg["a2"] + seg["b2"] * log_d3d + seg["e2"] * d3d)
    return np.maximum(pl_los, seg["a_nlos"] + seg["b_nlos"] * log_d3d), d3d


def shadow_fading_sigma_db(scenario, los, distance_m, breakpoint_m):
    """Shadow-fading standard deviation σ_SF of 38.901 Table 7.4.1-1, in dB.

    UMa LOS 4, NLOS 6; UMi LOS 4, NLOS 7.82; RMa LOS 4 up to the breakpoint (2-D distance) and
    6 beyond it, NLOS 8.
    """
    scenario, los = np.asarray(scenario), np.asarray(los)
    los_sigma = np.where((scenario == RMA) & (np.asarray(distance_m) > breakpoint_m), 6.0, 4.0)
    nlos_sigma = np.select([scenario == UMA, scenario == UMI], [6.0, 7.82], 8.0)
    return np.where(los == 1, los_sigma, nlos_sigma)


def path_loss_db(scenario, los, distance_m, frequency_ghz, bs_height_m, ue_height_m):
    """Median basic path loss and shadow-fading σ of 3GPP TR 38.901 Table 7.4.1-1.

    Args: scenario code (0 UMa, 1 UMi street canyon, 2 RMa), los (0/1), 2-D distance in m,
    carrier frequency in GHz, BS and UE heights in m. The breakpoint condition compares the
    2-D distance; the formulas take d3D = sqrt(d2D² + (hBS − hUT)²).
    Returns (path loss in dB, σ_SF in dB).
    """
    scenario, los, distance_m, frequency_ghz, bs_height_m, ue_height_m = np.broadcast_arrays(
        scenario, los, np.asarray(distance_m, dtype=float), frequency_ghz, bs_height_m,
        ue_height_m)
    seg = _path_loss_segments(scenario, los, frequency_ghz, bs_height_m, ue_height_m)
    pl, _ = _evaluate_path_loss(seg, distance_m)
    return pl, shadow_fading_sigma_db(scenario, los, distance_m, seg["d_bp"])


def los_probability(scenario, distance_m, ue_height_m):
    """LOS probability of 38.901 Table 7.4.2-1 (2-D distance in m, UE height in m).

    UMa includes the UE-height term C'(hUT) = ((hUT − 13)/10)^1.5 for 13 m < hUT ≤ 23 m.
    """
    scenario = np.asarray(scenario)
    d = np.maximum(np.asarray(distance_m, dtype=float), 1e-9)
    h_ut = np.asarray(ue_height_m, dtype=float)
    umi = np.where(d <= 18.0, 1.0, 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d))
    c_prime = np.where(h_ut <= 13.0, 0.0, ((np.clip(h_ut, 13.0, 23.0) - 13.0) / 10.0) ** 1.5)
    uma = np.where(d <= 18.0, 1.0, (18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d))
                   * (1.0 + c_prime * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0)))
    rma = np.where(d <= 10.0, 1.0, np.exp(-(d - 10.0) / 1000.0))
    # The C'(hUT) factor can lift the UMa formula just above 1 beyond 18 m: clip to 1.
    return np.select([scenario == UMA, scenario == UMI], [np.minimum(uma, 1.0), umi], rma)


# --------------------------------------------------------------------------------------------
# ITU-R P.838-3: specific attenuation of rain, horizontal polarisation
# --------------------------------------------------------------------------------------------

# Table 1 (k_H): a_j, b_j, c_j for j = 1..4, then m_k, c_k.
_P838_KH = (np.array([-5.33980, -0.35351, -0.23789, -0.94158]),
            np.array([-0.10008, 1.26970, 0.86036, 0.64552]),
            np.array([1.13098, 0.45400, 0.15354, 0.16817]), -0.18961, 0.71147)
# Table 3 (α_H): a_j, b_j, c_j for j = 1..5, then m_α, c_α.
_P838_ALPHAH = (np.array([-0.14318, 0.29591, 0.32177, -5.37610, 16.1721]),
                np.array([1.82442, 0.77564, 0.63773, -0.96230, -3.29980]),
                np.array([-0.55187, 0.19822, 0.13164, 1.47828, 3.43990]), 0.67849, -1.95537)
P838_MIN_FREQUENCY_GHZ = 1.0


def _p838_fit(log_f, table):
    a, b, c, m, c0 = table
    x = log_f[..., None]
    return np.sum(a * np.exp(-(((x - b) / c) ** 2)), axis=-1) + m * log_f + c0


def rain_coefficients(frequency_ghz):
    """(k_H, α_H) of ITU-R P.838-3 eqs. (2) and (3), Tables 1 and 3.

    Frequencies below 1 GHz lie outside the recommendation's 1–1000 GHz and are clamped to
    1 GHz (rain attenuation there is negligible: γ < 0.001 dB/km at 10 mm/h).
    """
    log_f = _log10(np.maximum(np.asarray(frequency_ghz, dtype=float), P838_MIN_FREQUENCY_GHZ))
    return 10.0 ** _p838_fit(log_f, _P838_KH), _p838_fit(log_f, _P838_ALPHAH)


def rain_specific_attenuation_db_per_km(frequency_ghz, rain_rate_mmh):
    """γ_R = k·R^α of ITU-R P.838-3 eq. (1), dB/km, horizontal polarisation; R in mm/h."""
    k, alpha = rain_coefficients(frequency_ghz)
    return k * np.asarray(rain_rate_mmh, dtype=float) ** alpha


# --------------------------------------------------------------------------------------------
# ITU-R P.676 Annex 1: specific attenuation of atmospheric gases (tabulated)
# --------------------------------------------------------------------------------------------

GAS_TABLE_FILE = "p676_gas_sea_level.npz"
_gas_table_cache: dict = {}


def gas_table():
    """The shipped P.676 table: (frequency_ghz grid, water_vapour_gm3 grid, γ in dB/km).

    Built by ``tools/build_gas_table.py`` from the line-by-line model of ITU-R P.676 Annex 1
    (oxygen + water vapour, via ``itur``) at 1013.25 hPa and 288.15 K.
    """
    if not _gas_table_cache:
        with resources.files("coverage_lib.physics").joinpath(GAS_TABLE_FILE).open("rb") as fh:
            z = np.load(fh)
            _gas_table_cache.update(f=z["frequency_ghz"], rho=z["water_vapour_gm3"],
                                    gamma=z["gamma_db_per_km"])
    return _gas_table_cache["f"], _gas_table_cache["rho"], _gas_table_cache["gamma"]


def gas_specific_attenuation_db_per_km(frequency_ghz, water_vapour_gm3):
    """γ_gas = γ_o + γ_w of ITU-R P.676 Annex 1 at sea level, dB/km (bilinear in f and ρ).

    Frequency in GHz (0.5–100), water-vapour density in g/m³ (0–25); values outside the table
    raise ValueError rather than extrapolate.
    """
    f_grid, rho_grid, gamma = gas_table()
    f, rho = np.broadcast_arrays(np.asarray(frequency_ghz, dtype=float),
                                 np.asarray(water_vapour_gm3, dtype=float))
    for name, v, grid, unit in (("frequency_ghz", f, f_grid, "GHz"),
                                ("water_vapour_gm3", rho, rho_grid, "g/m³")):
        if v.size and (np.nanmin(v) < grid[0] or np.nanmax(v) > grid[-1]):
            raise ValueError(f"{name} must lie in [{grid[0]}, {grid[-1]}] {unit} for the P.676 "
                             f"table; got values in [{np.nanmin(v)}, {np.nanmax(v)}]")
    i = np.clip(np.searchsorted(f_grid, f, side="right") - 1, 0, len(f_grid) - 2)
    j = np.clip(np.searchsorted(rho_grid, rho, side="right") - 1, 0, len(rho_grid) - 2)
    tf = (f - f_grid[i]) / (f_grid[i + 1] - f_grid[i])
    tr = (rho - rho_grid[j]) / (rho_grid[j + 1] - rho_grid[j])
    return ((1 - tf) * (1 - tr) * gamma[i, j] + tf * (1 - tr) * gamma[i + 1, j]
            + (1 - tf) * tr * gamma[i, j + 1] + tf * tr * gamma[i + 1, j + 1])


# --------------------------------------------------------------------------------------------
# Link budget: noise, SINR, coverage radius, area, QoS
# --------------------------------------------------------------------------------------------

def thermal_noise_dbm(bandwidth_mhz, noise_figure_db):
    """Thermal noise power N = −174 dBm/Hz + 10·log10(B in Hz) + NF, in dBm."""
    return -174.0 + 10.0 * _log10(np.asarray(bandwidth_mhz, dtype=float) * 1e6) + noise_figure_db


def interference_penalty_db(inr_db):
    """10·log10(1 + 10^(INR/10)): the SINR loss from interference at a given INR, dB."""
    return 10.0 * np.log10(1.0 + 10.0 ** (np.asarray(inr_db, dtype=float) / 10.0))


def qos_score(sinr_db, implementation_gap_db=IMPLEMENTATION_GAP_DB):
    """min(log2(1 + 10^((SINR − gap)/10)), 7.4063) / 7.4063, in [0, 1].

    Shannon efficiency with an implementation gap (default 3 dB), capped at the top of
    TS 38.214 CQI table 2 (256QAM, 7.4063 bit/s/Hz).
    """
    efficiency = np.log2(1.0 + 10.0 ** ((np.asarray(sinr_db, dtype=float)
                                         - implementation_gap_db) / 10.0))
    return np.minimum(efficiency, MAX_SPECTRAL_EFFICIENCY) / MAX_SPECTRAL_EFFICIENCY


def coverage_radius_m(seg, budget_db, attenuation_db_per_km, max_distance_m,
                      edge_sinr_db=EDGE_SINR_DB, steps=24):
    """Largest 2-D distance in [10 m, d_max] whose median SINR is still ≥ the edge threshold.

    ``seg`` are the path-loss segments of the link (``_path_loss_segments``), ``budget_db`` =
    tx power + gain − N − interference penalty, so that median SINR(d) = budget − PL(d) −
    γ·d3D/1000. Median SINR falls monotonically in d, so bisection on log d converges: 24
    steps over ≤ 3 decades give < 1e-6 relative error. Returns (radius in m, censored flag):
    censored where even 10 m fails (radius 0) or all of [10, d_max] passes (radius d_max).
    """
    def margin(d):
        pl, d3d = _evaluate_path_loss(seg, d)
        return budget_db - pl - attenuation_db_per_km * d3d / 1000.0 - edge_sinr_db

    lo = np.full(np.shape(budget_db), np.log(MIN_DISTANCE_M))
    hi = np.log(np.asarray(max_distance_m, dtype=float)) + np.zeros_like(lo)
    fails_at_min = margin(np.exp(lo)) < 0
    passes_at_max = margin(np.exp(hi)) >= 0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        ok = margin(np.exp(mid)) >= 0
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    radius = np.exp(lo)
    radius = np.where(passes_at_max, np.asarray(max_distance_m, dtype=float), radius)
    radius = np.where(fails_at_min, 0.0, radius)
    return radius, fails_at_min | passes_at_max


def consistent_targets(features: pd.DataFrame, received_power_dbm, coverage_radius_m,
                       implementation_gap_db=IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """The five targets made to obey the identities of the book's physics page from two free quantities.

    Radius is clipped to [0, d_max]; SINR = P_rx − N − 10·log10(1 + INR); area = π·r²/10⁶;
    qos = qos(SINR). A model that predicts received power and radius thus answers with
    outputs that satisfy rules 3, 4 and 5 by construction (the monotonicity rules remain
    the model's to learn).
    """
    x = features[list(FEATURES)].to_numpy(dtype=float)
    return pd.DataFrame(consistent_array(x, received_power_dbm, coverage_radius_m,
                                         implementation_gap_db),
                        columns=TARGET_INDEX, index=features.index)


def consistent_array(x: np.ndarray, received_power_dbm, coverage_radius_m,
                     implementation_gap_db=IMPLEMENTATION_GAP_DB) -> np.ndarray:
    """``consistent_targets`` on links given as a (rows, 13) array in FEATURES order; returns
    the five targets as a (rows, 5) array in TARGETS order."""
    column = FEATURES.index
    power = np.asarray(received_power_dbm, dtype=float)
    d_max = max_distance_m(x[:, column("scenario")])
    radius = np.clip(np.asarray(coverage_radius_m, dtype=float), 0.0, d_max)
    sinr = (power - thermal_noise_dbm(x[:, column("bandwidth_mhz")],
                                      x[:, column("noise_figure_db")])
            - interference_penalty_db(x[:, column("inr_db")]))
    out = np.empty((len(power), 5))
    for name, values in (("received_power_dbm", power), ("sinr_db", sinr),
                         ("coverage_radius_m", radius),
                         ("coverage_area_km2", np.pi * radius ** 2 / 1e6),
                         ("qos_score", qos_score(sinr, implementation_gap_db))):
        out[:, TARGETS.index(name)] = values
    return out


def link_budget(features: pd.DataFrame, edge_sinr_db=EDGE_SINR_DB,
                implementation_gap_db=IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """Noise-free (median, X = 0) targets of each link in ``features`` (columns: FEATURES).

    received_power = tx_power + gain − PL_38.901 − (γ_rain + γ_gas)·d3D[km];
    sinr = received_power − N − 10·log10(1 + INR); radius by bisection (``coverage_radius_m``)
    with this row's LOS state, rain and gas held; area = π·r²/10⁶; qos = qos(sinr).
    Also returns ``shadow_sigma_db`` (38.901 σ_SF) and ``radius_censored``.
    """
    col = {name: features[name].to_numpy() for name in features.columns}
    scenario = col["scenario"].astype(int)
    los = col["los"].astype(int)
    seg = _path_loss_segments(scenario, los, col["frequency_ghz"], col["bs_height_m"],
                              col["ue_height_m"])
    pl, d3d = _evaluate_path_loss(seg, col["distance_m"].astype(float))
    gamma = (rain_specific_attenuation_db_per_km(col["frequency_ghz"], col["rain_rate_mmh"])
             + gas_specific_attenuation_db_per_km(col["frequency_ghz"], col["water_vapour_gm3"]))
    noise = thermal_noise_dbm(col["bandwidth_mhz"], col["noise_figure_db"])
    penalty = interference_penalty_db(col["inr_db"])
    eirp = col["tx_power_dbm"] + col["antenna_gain_dbi"]
    received = eirp - pl - gamma * d3d / 1000.0
    sinr = received - noise - penalty
    d_max = max_distance_m(scenario)
    radius, censored = coverage_radius_m(seg, eirp - noise - penalty, gamma, d_max,
                                         edge_sinr_db=edge_sinr_db)
    return pd.DataFrame({
        "received_power_dbm": received,
        "sinr_db": sinr,
        "coverage_radius_m": radius,
        "coverage_area_km2": np.pi * radius ** 2 / 1e6,
        "qos_score": qos_score(sinr, implementation_gap_db),
        "shadow_sigma_db": shadow_fading_sigma_db(scenario, los, col["distance_m"], seg["d_bp"]),
        "radius_censored": censored,
    }, index=features.index)
