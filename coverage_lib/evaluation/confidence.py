"""The cascade's confidence gate: a small gradient-boosted model, fitted on validation, that
predicts from a link and the primary's answer how much worse that answer is than the backup's.

It needs nothing from the backup at prediction time: its inputs are the 13 features and the
primary's five outputs (each on its training scale), one pass of about a hundred shallow trees.
Its target, per validation row, is the primary's *excess* noise-free error over the backup's,
target by target in units of that target's tolerance scale (``Selector.scales``), the largest
over the targets: the row whose answer a user would most regret. The model is saved as
LightGBM's text format inside the Selector's thresholds file (JSON), never pickled.
"""
from __future__ import annotations

import lightgbm
import numpy as np
import torch

GATE_FORMAT = "lightgbm-text"
# Small on purpose: the gate runs on every in-domain row, so its trees must cost far less than
# the backup they save (measured in the evaluation's gate table).
GATE_PARAMS = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.1,
               "min_data_in_leaf": 200, "feature_fraction": 1.0, "bagging_fraction": 1.0,
               "deterministic": True, "force_row_wise": True, "verbose": -1}
GATE_ROUNDS = 80
MIN_ROWS = 100  # below 200 rows a leaf, a twentieth of the rows (small profiles and tests)


def design(x: np.ndarray, primary_scaled: np.ndarray) -> np.ndarray:
    """The gate's inputs: links (rows, 13) beside the primary's outputs on its training scale
    (rows, 5)."""
    return np.concatenate([np.asarray(x, dtype=float), np.asarray(primary_scaled, dtype=float)],
                          axis=1)


class ConfidenceGate:
    """``score(x, primary_scaled)``: the predicted excess (tolerance units) per row."""

    def __init__(self, booster: lightgbm.Booster):
        self.booster = booster

    @classmethod
    def fit(cls, x: np.ndarray, primary_scaled: np.ndarray, excess: np.ndarray,
            seed: int = 0) -> "ConfidenceGate":
        if len(x) < MIN_ROWS:
            raise ValueError(f"the confidence gate needs at least {MIN_ROWS} validation rows; "
                             f"got {len(x)}")
        params = {**GATE_PARAMS, "seed": int(seed), "num_threads": torch.get_num_threads(),
                  "min_data_in_leaf": min(GATE_PARAMS["min_data_in_leaf"], len(x) // 20)}
        data = lightgbm.Dataset(design(x, primary_scaled), label=np.asarray(excess, float),
                                free_raw_data=True)
        return cls(lightgbm.train(params, data, num_boost_round=GATE_ROUNDS))

    def score(self, x: np.ndarray, primary_scaled: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros(0)
        return self.booster.predict(design(x, primary_scaled),
                                    num_threads=torch.get_num_threads())

    def to_json(self) -> dict:
        return {"format": GATE_FORMAT, "model": self.booster.model_to_string()}

    @classmethod
    def from_json(cls, payload) -> "ConfidenceGate":
        if not isinstance(payload, dict) or payload.get("format") != GATE_FORMAT \
                or not isinstance(payload.get("model"), str):
            raise ValueError(f"the confidence gate must be {{'format': {GATE_FORMAT!r}, "
                             f"'model': LightGBM's text model}}; got {type(payload).__name__}")
        return cls(lightgbm.Booster(model_str=payload["model"]))
