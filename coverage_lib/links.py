"""What a link is: the values each of the 13 features may physically take.

This is not the data set's domain (the ranges the generator draws from, ``dataset``): a link at
1000 GHz or with a 500 m UE height is physical but unusual, so the models answer it and the
Selector routes it to the backup as ``out_of_domain``. A negative distance, a zero bandwidth or
an unknown scenario code is not a link at all: ``check_features`` refuses it, naming the column,
the first offending row and what is allowed, before any work starts. Every model's ``predict``,
the Selector and the interactive notebook go through this one function.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import FEATURES
from .physics import SCENARIO_NAMES


def _codes(names: dict) -> str:
    return ", ".join(f"{code} ({name})" for code, name in names.items())


# Per feature: (test of an admissible value on a float array, what is allowed, in words).
# A feature not listed here may take any finite value (powers, gains and INR in dB or dBm).
ADMISSIBLE = {
    "frequency_ghz": (lambda v: v > 0, "a frequency > 0 GHz"),
    "distance_m": (lambda v: v > 0, "a distance > 0 m"),
    "bs_height_m": (lambda v: v > 0, "a height > 0 m"),
    "ue_height_m": (lambda v: v > 0, "a height > 0 m"),
    "bandwidth_mhz": (lambda v: v > 0, "a bandwidth > 0 MHz"),
    "noise_figure_db": (lambda v: v >= 0, "a noise figure ≥ 0 dB"),
    "rain_rate_mmh": (lambda v: v >= 0, "a rain rate ≥ 0 mm/h"),
    "water_vapour_gm3": (lambda v: v >= 0, "a water-vapour density ≥ 0 g/m³"),
    "scenario": (lambda v: np.isin(v, list(SCENARIO_NAMES)),
                 f"one of the scenario codes {_codes(SCENARIO_NAMES)}"),
    "los": (lambda v: np.isin(v, [0, 1]), "0 (NLOS) or 1 (LOS)"),
}


def _plain(value):
    """A numpy scalar as the Python value it holds, so messages read ``-1.0``, not
    ``np.float64(-1.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def _where(features: pd.DataFrame, position: int) -> str:
    label = _plain(features.index[position])
    return f"row {position}" + ("" if label == position else f" (index label {label!r})")


def check_features(features: pd.DataFrame) -> pd.DataFrame:
    """Refuse anything that is not a frame of physical links, before any work.

    ValueError when ``features`` is not a DataFrame, lacks a column of FEATURES or has another
    one, or when a value is NaN, inf, non-numeric or not admissible (``ADMISSIBLE``); the
    message names the column, the first offending row and its value, and what is allowed.
    Returns ``features`` unchanged.
    """
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame with columns {FEATURES}; got "
                         f"{type(features).__name__}")
    missing = [c for c in FEATURES if c not in features.columns]
    if missing:
        raise ValueError(f"features is missing column {missing[0]!r}; required: {FEATURES}")
    extra = [c for c in features.columns if c not in FEATURES]
    if extra:
        raise ValueError(f"features has unexpected column {extra[0]!r}; allowed: {FEATURES}")
    for column in FEATURES:
        raw = features[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(values)
        if not finite.all():
            i = int(np.argmin(finite))
            raise ValueError(f"column {column!r}, {_where(features, i)}: {_plain(raw.iloc[i])!r} is "
                             f"NaN, inf or not a number; every feature must be a finite number")
        test, allowed = ADMISSIBLE.get(column, (None, None))
        if test is not None:
            ok = test(values)
            if not ok.all():
                i = int(np.argmin(ok))
                raise ValueError(f"column {column!r}, {_where(features, i)}: {_plain(raw.iloc[i])!r} is "
                                 f"not a physical link's value; allowed: {allowed}")
    return features
