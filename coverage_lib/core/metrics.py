"""Regression metrics per target, and the oracle (noise-floor) predictor."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import TARGETS


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE and R² (1 − SS_res/SS_tot) of one target."""
    y_true = np.asarray(y_true, dtype=float)
    err = np.asarray(y_pred, dtype=float) - y_true
    ss_tot = np.sum((y_true - y_true.mean()) ** 2)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))),
            "r2": float(1.0 - np.sum(err ** 2) / ss_tot) if ss_tot > 0 else float("nan")}


MEDIANS = {"received_power_dbm": "received_power_median_dbm", "sinr_db": "sinr_median_db"}


def target_metrics(frame: pd.DataFrame, predictions: pd.DataFrame) -> dict:
    """{target: {"mae", "rmse", "r2"}} of ``predictions`` against ``frame``'s targets, plus
    ``mae_vs_median`` for received power and SINR where ``frame`` holds the medians."""
    out = {}
    for target in TARGETS:
        out[target] = regression_metrics(frame[target], predictions[target])
        median = MEDIANS.get(target)
        if median in frame:
            out[target]["mae_vs_median"] = float(np.mean(np.abs(
                predictions[target].to_numpy(dtype=float) - frame[median].to_numpy(dtype=float))))
    return out


def score(frame: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics of ``predictions`` against the targets in ``frame``: one row per target."""
    return pd.DataFrame({t: regression_metrics(frame[t], predictions[t]) for t in TARGETS}).T


