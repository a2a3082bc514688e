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

from .schema import FEATURE_INDEX, FEATURES
from .domain import SCENARIO_NAMES


def _one_of(values: np.ndarray, codes) -> np.ndarray:
    """values == any of codes (np.isin, without its set-up cost on a handful of rows)."""
    return np.logical_or.reduce([values == code for code in codes])


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
    "scenario": (lambda v: _one_of(v, SCENARIO_NAMES),
                 f"one of the scenario codes {_codes(SCENARIO_NAMES)}"),
    "los": (lambda v: _one_of(v, (0, 1)), "0 (NLOS) or 1 (LOS)"),
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
    Returns ``features`` unchanged. (Arrays go to the ``predict_array`` APIs, not here.)
    """
    frame_array(features)
    return features


def frame_array(features: pd.DataFrame) -> np.ndarray:
    """``check_features``, returning the links as ``feature_array`` does: what the DataFrame
    APIs call, so a frame is checked once."""
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame with columns {FEATURES}; got "
                         f"{type(features).__name__} (an array of links goes to predict_array)")
    return feature_array(features)


def feature_array(features) -> np.ndarray:
    """The links of ``features`` as a float64 array (rows, 13), columns in FEATURES order,
    after the checks of ``check_features``. ``features`` is a DataFrame, or already such an
    array (the prediction APIs' array-in, array-out path: checked alike, with rows named by
    position)."""
    if isinstance(features, np.ndarray):
        if features.ndim != 2 or features.shape[1] != len(FEATURES):
            raise ValueError(f"features as an array must have shape (rows, {len(FEATURES)}), "
                             f"columns in FEATURES order {FEATURES}; got shape {features.shape}")
        if not np.issubdtype(features.dtype, np.number) or np.iscomplexobj(features):
            raise ValueError(f"features as an array must hold real numbers; got dtype "
                             f"{features.dtype}")
        return _checked(np.asarray(features, dtype=float), None, features)
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame with columns {FEATURES} (or a "
                         f"(rows, {len(FEATURES)}) array); got {type(features).__name__}")
    frame = features
    if not features.columns.equals(FEATURE_INDEX):  # the usual case first: FEATURES in order
        missing = [c for c in FEATURES if c not in features.columns]
        if missing:
            raise ValueError(f"features is missing column {missing[0]!r}; required: {FEATURES}")
        extra = [c for c in features.columns if c not in FEATURES]
        if extra:
            raise ValueError(f"features has unexpected column {extra[0]!r}; allowed: {FEATURES}")
        frame = features[list(FEATURES)]
    values = frame.to_numpy()  # one numeric dtype only where every column is ints or floats
    if values.dtype.kind in "iuf":
        values = values.astype(float, copy=False)
    else:  # strings, objects, booleans: what does not read as a number becomes NaN, named below
        values = np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
                                  for c in FEATURES]) if len(frame) else \
            np.empty((0, len(FEATURES)))
    return _checked(values, features, features)


_TESTS = [(FEATURES.index(c), test) for c, (test, _) in ADMISSIBLE.items()]


def _all_admissible(values: np.ndarray) -> bool:
    """The fast path of ``_checked``: every value finite and admissible, tested column by
    column on the whole array (microseconds for one link); ``_checked`` finds the culprit
    otherwise."""
    with np.errstate(invalid="ignore"):
        return bool(np.isfinite(values).all()
                    and all(test(values[:, j]).all() for j, test in _TESTS))


def _checked(values: np.ndarray, frame, raw) -> np.ndarray:
    """``values`` if every entry is finite and admissible, else ValueError naming the first
    offending column (in FEATURES order), row and raw value."""
    if _all_admissible(values):
        return values
    finite = np.isfinite(values)
    ok = finite.copy()
    for j, column in enumerate(FEATURES):
        test = ADMISSIBLE.get(column, (None, None))[0]
        if test is not None:
            ok[:, j] &= test(np.where(finite[:, j], values[:, j], 1.0))
    if ok.all():
        return values
    j = int(np.argmin(ok.all(axis=0)))
    column, i = FEATURES[j], int(np.argmin(ok[:, j]))
    where = _where(frame, i) if frame is not None else f"row {i}"
    value = _plain(frame[column].iloc[i] if frame is not None else raw[i, j])
    if not finite[i, j]:
        raise ValueError(f"column {column!r}, {where}: {value!r} is NaN, inf or not a number; "
                         f"every feature must be a finite number")
    raise ValueError(f"column {column!r}, {where}: {value!r} is not a physical link's value; "
                     f"allowed: {ADMISSIBLE[column][1]}")
