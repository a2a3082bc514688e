"""The gradient-boosting baseline a practitioner would try first: one LightGBM model per target.

The inputs are exactly the networks' (``Normalizer.features``: log10 frequency, distance and
bandwidth, log1p rain, then standardised: harmless for trees, and it keeps one input path).
Radius and area are learned in their log10 transform (``normalization.TARGET_TRANSFORMS``:
they span four decades and are 0 where even 10 m fails); the other targets in physical units.

``fit`` runs a small grid search per target (Ke et al., "LightGBM", NeurIPS 2017; the grid
covers the knobs that matter most on tabular data: leaves, learning rate, leaf size). Every
candidate trains with early stopping on the validation split's MAE; each target keeps the
candidate with the lowest validation MAE (in the target's training units: dB, log10 m,
log10 km², qos units). With ``search_rows``, the search runs on a seeded subsample of that
many training rows and the chosen candidate is then refitted on every training row (again
with early stopping on validation): the usual way to afford a search on a large data set. Training is deterministic: a fixed seed, ``deterministic=True``,
``force_row_wise=True`` and a fixed thread count.

``save`` writes LightGBM's own text model format, one file per target, and a JSON with the
normaliser statistics, the chosen parameters and the data set checksum. Never pickle.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd

from . import params
from .dataset import FEATURES, TARGETS
from .io import atomic_write_text
from .normalization import TARGET_TRANSFORMS, Normalizer, forward_transform, inverse_transform, check_features

FORMAT = "d2tl-coverage-lightgbm/1"
FILE_META = "lightgbm_baseline.json"
FILE_MODEL = "lightgbm_{}.txt"
# 2 × 2 × 2 = 8 candidates per target.
DEFAULT_GRID = {"num_leaves": [63, 255], "learning_rate": [0.05, 0.1],
                "min_child_samples": [20, 100]}


def _grid(search: dict) -> list[dict]:
    """Every combination of a {parameter: [values]} grid, in a fixed order."""
    if not isinstance(search, dict) or not search or not all(
            isinstance(v, (list, tuple)) and len(v) for v in search.values()):
        raise ValueError(f"search must be a non-empty dict {{parameter: [values, ...]}}; "
                         f"got {search!r}")
    names = sorted(search)
    return [dict(zip(names, values)) for values in itertools.product(*(search[n] for n in names))]


def _target_values(frame: pd.DataFrame, target: str) -> np.ndarray:
    return forward_transform(TARGET_TRANSFORMS.get(target), frame[target].to_numpy(dtype=float))


class LightGBMBaseline:
    """One LightGBM regressor per target, tuned per target on the validation split.

    ``num_boost_round`` caps the trees; ``early_stopping_rounds`` without a better validation
    MAE ends a candidate. After ``fit``, ``chosen[target]`` holds the chosen parameters, the
    best iteration and its validation MAE; ``search_results`` every candidate tried.
    """

    def __init__(self, seed: int = 0, num_threads: int = 2, num_boost_round: int = 5000,
                 early_stopping_rounds: int = 100):
        for name, value in (("num_threads", num_threads), ("num_boost_round", num_boost_round),
                            ("early_stopping_rounds", early_stopping_rounds)):
            params.positive_int(name, value)
        params.non_negative_int("seed", seed)
        self.seed, self.num_threads = seed, num_threads
        self.num_boost_round, self.early_stopping_rounds = num_boost_round, early_stopping_rounds
        self.normalizer: Normalizer | None = None
        self.boosters: dict[str, lightgbm.Booster] = {}
        self.chosen: dict[str, dict] = {}
        self.search_results: list[dict] = []
        self.data_manifest_sha256: str | None = None
        self.search_rows: int | None = None

    def _params(self, candidate: dict) -> dict:
        return {"objective": "regression", "metric": "l1", "seed": self.seed,
                "deterministic": True, "force_row_wise": True, "num_threads": self.num_threads,
                "feature_pre_filter": False, "verbosity": -1, **candidate}

    def _train(self, candidate: dict, x_train, y_train, x_val, y_val):
        """One candidate with early stopping: (booster, best iteration, validation MAE)."""
        # A fresh Dataset per candidate: min_child_samples changes how bins are filtered.
        params = self._params(candidate)
        train_set = lightgbm.Dataset(x_train, y_train, feature_name=FEATURES, params=params)
        val_set = lightgbm.Dataset(x_val, y_val, reference=train_set, params=params)
        booster = lightgbm.train(
            params, train_set, num_boost_round=self.num_boost_round,
            valid_sets=[val_set], valid_names=["val"],
            callbacks=[lightgbm.early_stopping(self.early_stopping_rounds, verbose=False)])
        iteration = booster.best_iteration or booster.current_iteration()
        val_mae = float(np.mean(np.abs(booster.predict(x_val, num_iteration=iteration) - y_val)))
        return booster, int(iteration), val_mae

    def fit(self, train_frame: pd.DataFrame, val_frame: pd.DataFrame, search: dict | None = None,
            data_manifest_sha256: str | None = None,
            search_rows: int | None = None) -> "LightGBMBaseline":
        """Search ``search`` (default DEFAULT_GRID) per target; keep the best on validation MAE.

        ``search_rows``: search on that many training rows (seeded subsample), then refit the
        chosen candidate on all of them; None searches on every row.
        """
        if search_rows is not None:
            params.positive_int("search_rows", search_rows)
        for name, frame in (("train_frame", train_frame), ("val_frame", val_frame)):
            missing = [c for c in FEATURES + TARGETS if c not in frame.columns]
            if missing:
                raise ValueError(f"{name} is missing column {missing[0]!r}")
            check_features(frame[FEATURES])
        candidates = _grid(DEFAULT_GRID if search is None else search)
        self.normalizer = Normalizer.fit(train_frame)
        x_train = self.normalizer.features(train_frame).numpy()
        x_val = self.normalizer.features(val_frame).numpy()
        self.boosters, self.chosen, self.search_results = {}, {}, []
        self.data_manifest_sha256 = data_manifest_sha256
        subsample = None
        if search_rows is not None and search_rows < len(x_train):
            subsample = np.sort(np.random.default_rng(self.seed).choice(
                len(x_train), size=search_rows, replace=False))
        self.search_rows = None if subsample is None else int(search_rows)
        for target in TARGETS:
            y_train, y_val = _target_values(train_frame, target), _target_values(val_frame, target)
            xs, ys = (x_train, y_train) if subsample is None else (x_train[subsample],
                                                                   y_train[subsample])
            best = None
            for candidate in candidates:
                booster, iteration, val_mae = self._train(candidate, xs, ys, x_val, y_val)
                row = {"target": target, **candidate, "best_iteration": iteration,
                       "val_mae": val_mae, "train_rows": int(len(xs))}
                self.search_results.append(row)
                if best is None or val_mae < best[0]["val_mae"]:
                    best = (row, booster, candidate)
            row, booster, candidate = best
            if subsample is not None:  # refit the chosen candidate on every training row
                booster, iteration, val_mae = self._train(candidate, x_train, y_train,
                                                          x_val, y_val)
                row = {**row, "best_iteration": iteration, "val_mae": val_mae,
                       "train_rows": int(len(x_train))}
            self.chosen[target] = {"params": dict(candidate),
                                   "best_iteration": row["best_iteration"],
                                   "val_mae": row["val_mae"], "train_rows": row["train_rows"]}
            # Keep only the trees up to the best iteration: what is saved is what predicts.
            self.boosters[target] = lightgbm.Booster(
                model_str=booster.model_to_string(num_iteration=row["best_iteration"]))
        return self

    def search_table(self) -> pd.DataFrame:
        """Every candidate tried: target, parameters, best iteration, validation MAE."""
        return pd.DataFrame(self.search_results)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """The five targets in physical units; a missing or extra column, NaN or inf →
        ValueError naming the column (the networks' ``check_features``)."""
        if not self.boosters:
            raise ValueError("this LightGBMBaseline is not fitted; call fit() or load()")
        check_features(features)
        x = self.normalizer.features(features).numpy()
        if not len(x):
            return pd.DataFrame({t: np.empty(0) for t in TARGETS}, index=features.index)
        return pd.DataFrame({t: inverse_transform(TARGET_TRANSFORMS.get(t), self.boosters[t].predict(x))
                             for t in TARGETS}, index=features.index)

    def save(self, folder) -> Path:
        """Write one LightGBM text model per target, then the JSON that names them (last, so
        a JSON always describes complete model files). Returns the JSON's path."""
        if not self.boosters:
            raise ValueError("this LightGBMBaseline is not fitted; nothing to save")
        folder = Path(folder)
        files = {}
        for target in TARGETS:
            text = self.boosters[target].model_to_string()
            atomic_write_text(folder / FILE_MODEL.format(target), text)
            files[target] = {"file": FILE_MODEL.format(target),
                             "sha256": hashlib.sha256(text.encode()).hexdigest()}
        meta = {"format": FORMAT, "features": FEATURES, "targets": TARGETS,
                "feature_stats": self.normalizer.to_dict(), "chosen": self.chosen,
                "search_results": self.search_results, "models": files,
                "data_manifest_sha256": self.data_manifest_sha256,
                "settings": {"seed": self.seed, "num_threads": self.num_threads,
                             "num_boost_round": self.num_boost_round,
                             "early_stopping_rounds": self.early_stopping_rounds},
                "search_rows": self.search_rows,
                "lightgbm_version": lightgbm.__version__}
        return atomic_write_text(folder / FILE_META, json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, folder, data_manifest_sha256: str | None = None) -> "LightGBMBaseline":
        """Read a saved baseline; a foreign JSON, a changed model file, other features, or
        (when ``data_manifest_sha256`` is given) another data set → ValueError."""
        folder = Path(folder)
        path = folder / FILE_META
        if not path.is_file():
            raise ValueError(f"{path} does not exist; not a saved LightGBM baseline")
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a D2TL Coverage LightGBM baseline "
                             f"(format {FORMAT!r} expected)")
        if meta["features"] != FEATURES or meta["targets"] != TARGETS:
            raise ValueError(f"{path} was fitted on {meta['features']} → {meta['targets']}; "
                             f"this library uses {FEATURES} → {TARGETS}")
        if data_manifest_sha256 not in (None, meta["data_manifest_sha256"]):
            raise ValueError(f"{path} was fitted on data set MANIFEST sha256 "
                             f"{meta['data_manifest_sha256']}, not on the one given "
                             f"({data_manifest_sha256})")
        model = cls(**meta["settings"])
        model.normalizer = Normalizer(meta["feature_stats"])
        model.chosen, model.search_results = meta["chosen"], meta["search_results"]
        model.data_manifest_sha256 = meta["data_manifest_sha256"]
        model.search_rows = meta.get("search_rows")
        for target in TARGETS:
            entry = meta["models"][target]
            model_path = folder / entry["file"]
            if not model_path.is_file() or hashlib.sha256(
                    model_path.read_bytes()).hexdigest() != entry["sha256"]:
                raise ValueError(f"{model_path} is missing or differs from the model that "
                                 f"{path} describes (sha256 {entry['sha256']})")
            model.boosters[target] = lightgbm.Booster(model_file=str(model_path))
        return model
