"""The oracle (noise-floor) predictor: the noise-free medians, the best any model can do from
the features, and a model's metrics beside it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import propagation
from ..core.schema import TARGETS
from ..core.metrics import score


def oracle_predictions(frame: pd.DataFrame, implementation_gap_db=propagation.IMPLEMENTATION_GAP_DB
                       ) -> pd.DataFrame:
    """The best any model can do from the features: the noise-free medians.

    Received power and SINR: the stored medians; radius and area are noise-free (exact);
    qos: qos(median SINR) with the data set's implementation gap
    (``dataset.physics_assumptions(stats)``; the default is the library's).
    """
    return pd.DataFrame({
        "received_power_dbm": frame["received_power_median_dbm"],
        "sinr_db": frame["sinr_median_db"],
        "coverage_radius_m": frame["coverage_radius_m"],
        "coverage_area_km2": frame["coverage_area_km2"],
        "qos_score": propagation.qos_score(frame["sinr_median_db"].to_numpy(), implementation_gap_db),
    }, index=frame.index)


def expected_oracle_floor(frame: pd.DataFrame) -> dict:
    """The analytic floor of Gaussian shadowing: MAE √(2/π)·E[σ], RMSE √E[σ²] (dB)."""
    sigma = frame["shadow_sigma_db"].to_numpy()
    return {"mae": float(np.sqrt(2 / np.pi) * sigma.mean()),
            "rmse": float(np.sqrt(np.mean(sigma ** 2)))}


def against_oracle(model_metrics: dict, frame: pd.DataFrame,
                   implementation_gap_db=propagation.IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """A model's per-target metrics beside the oracle's on the same rows.

    ``model_metrics`` is {target: {"mae", "rmse", "r2", ["mae_vs_median"]}} as the trainer's
    ``evaluate`` returns; the ratio column is model MAE / oracle MAE (1 = at the noise floor).
    ``implementation_gap_db``: the data set's (the oracle's qos), as for ``oracle_predictions``.
    """
    oracle = score(frame, oracle_predictions(frame, implementation_gap_db))
    rows = {}
    for t in TARGETS:
        m = model_metrics[t]
        rows[t] = {"MAE": m["mae"], "RMSE": m["rmse"], "R²": m["r2"],
                   "MAE vs median": m.get("mae_vs_median", float("nan")),
                   "oracle MAE": oracle.loc[t, "mae"], "oracle R²": oracle.loc[t, "r2"],
                   "MAE / oracle MAE": (m["mae"] / oracle.loc[t, "mae"]
                                        if oracle.loc[t, "mae"] > 0 else float("nan"))}
    return pd.DataFrame(rows).T


def compare_models(model_metrics: dict, frame: pd.DataFrame, stat: str = "mae",
                   implementation_gap_db=propagation.IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """One metric (``mae``, ``rmse``, ``r2`` or ``mae_vs_median``) per target: the oracle's
    and each model's, side by side. ``model_metrics`` maps a model's name to its per-target
    metrics as the trainer's ``evaluate`` returns them; ``implementation_gap_db``: the data
    set's (the oracle's qos)."""
    oracle = score(frame, oracle_predictions(frame, implementation_gap_db))
    table = {"oracle": oracle[stat] if stat in oracle else pd.Series(0.0, index=TARGETS)}
    for name, m in model_metrics.items():
        table[name] = pd.Series({t: m[t].get(stat, float("nan")) for t in TARGETS})
    return pd.DataFrame(table)
