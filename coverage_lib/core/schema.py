"""What a coverage row is: the 13 link features, the 5 targets, the oracle's columns, and the
splits (in distribution, and out of distribution per feature). Every layer names columns
through these lists; the generator that fills them is ``datasets.dataset``."""
from __future__ import annotations

import pandas as pd


FEATURES = [
    "frequency_ghz", "distance_m", "bs_height_m", "ue_height_m", "tx_power_dbm",
    "antenna_gain_dbi", "bandwidth_mhz", "noise_figure_db", "rain_rate_mmh",
    "water_vapour_gm3", "scenario", "los", "inr_db",
]


TARGETS = [
    "received_power_dbm", "sinr_db", "coverage_radius_m", "coverage_area_km2", "qos_score",
]


# Features and targets as a frame's column labels, built once: from a list pandas infers their
# string dtype on every call (~0.1 ms, a third of the MLP's own time for one link).
FEATURE_INDEX, TARGET_INDEX = pd.Index(FEATURES), pd.Index(TARGETS)


ORACLE_COLUMNS = [
    "received_power_median_dbm", "sinr_median_db", "shadow_sigma_db", "shadowing_db",
    "radius_censored",
]


COLUMNS = FEATURES + TARGETS + ORACLE_COLUMNS


MODEL_COLUMNS = FEATURES + TARGETS  # what a model learns from (a training split's read)


# Features whose in-distribution range is a parameter; rows beyond it are OOD test sets.
OOD_FEATURES = {"frequency": "frequency_ghz", "rain": "rain_rate_mmh", "distance": "distance_m"}


SPLITS = ["train", "val", "test"]


OOD_SPLITS = [f"ood_{name}" for name in OOD_FEATURES] + ["ood_multiple"]
