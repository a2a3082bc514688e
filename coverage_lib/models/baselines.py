"""The gradient-boosting baseline a practitioner would try first: one LightGBM model per target.

The inputs are exactly the networks' (``Normalizer.features``: log10 frequency, distance and
bandwidth, log1p rain, then standardised: harmless for trees, and it keeps one input path).
Radius and area are learned in their log10 transform (``normalization.TARGET_TRANSFORMS``:
they span four decades and are 0 where even 10 m fails); the other targets in physical units.

``fit`` tunes each target by random search (Bergstra & Bengio, "Random search for
hyper-parameter optimization", JMLR 13, 2012: with a few knobs that matter, random draws cover
each of them better than a grid of the same size) over the knobs that matter most for
LightGBM on tabular data (Ke et al., "LightGBM", NeurIPS 2017): leaves, learning rate, leaf
size and the fraction of features each tree sees. ``random_candidates`` draws them from a
``space`` with a seed: the same seed gives the same candidates, in the same order, for every
target. Every candidate trains with early stopping on the validation split's MAE; each target
keeps the candidate with the lowest validation MAE (in the target's training units: dB, log10
m, log10 km², qos units). With ``search_rows``, the search runs on a seeded subsample of that
many training rows and the chosen candidate is then refitted on every training row (again
with early stopping on validation): the usual way to afford a search on a large data set.

``num_boost_round`` is a cap meant not to bind: early stopping ends every fit. Whether it did
is recorded (``cap_reached``: the fit ran all ``num_boost_round`` rounds, so validation MAE may
still have been falling), with the wall seconds of each target's search and refit: what the
tuning cost. Early stopping counts an improvement only if it lowers the best validation MAE
by more than ``min_improvement`` of it (relative; 0 counts any): radius and area are
noise-free, their validation MAE keeps falling by a few per mille per thousand trees for tens
of thousands of trees, and every tree kept is paid again at every prediction. Training is
deterministic: a fixed seed, ``deterministic=True``, ``force_row_wise=True`` and a fixed
thread count; only the recorded seconds vary.

``save`` writes LightGBM's own text model format, one file per target, and a JSON with the
normaliser statistics, the chosen parameters and the data set checksum. Never pickle.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd

from ..core import progress, validation
from ..core.schema import FEATURES, TARGETS
from ..core.io import atomic_write_text, read_json
from ..core.links import check_features
from .normalization import (
    forward_transform, inverse_transform, Normalizer, TARGET_TRANSFORMS)

FORMAT = "d2tl-coverage-lightgbm/2"
FILE_META = "lightgbm_baseline.json"
FILE_MODEL = "lightgbm_{}.txt"
# The parameters a search may set: (drawn log-uniformly, integer, lowest and highest value
# LightGBM accepts that make sense here). Log-uniform where the effect is multiplicative.
SEARCHABLE = {
    "num_leaves": (True, True, 2, 131072),
    "learning_rate": (True, False, 1e-4, 1.0),
    "min_child_samples": (True, True, 1, 100000),
    "feature_fraction": (False, False, 0.05, 1.0),
}
# The space of the paper profile. On its data (benchmarks/bench_lightgbm.py), radius and area
# want tens of leaves and thousands of trees, power and SINR few leaves and large ones against
# the fading. Learning rates below 0.05 bought < 1 % of validation MAE on radius for 2.6 times
# the trees, and over a thousand leaves only cost time on a search subsample.
DEFAULT_SPACE = {"num_leaves": [15, 1023], "learning_rate": [0.05, 0.3],
                 "min_child_samples": [5, 500], "feature_fraction": [0.5, 1.0]}
DEFAULT_CANDIDATES = 12
# A stream of its own, so that the candidates do not share draws with the row subsample.
_CANDIDATE_STREAM = 1


def _early_stopping(rounds: int, min_improvement: float):
    """``lightgbm.early_stopping(rounds)`` on the validation MAE, where an improvement counts
    only if it lowers the best MAE so far by more than ``min_improvement`` of it. Relative,
    unlike LightGBM's absolute ``min_delta``: the targets' MAE spans 0.01 (log10 m) to 5 (dB).
    Stops ``rounds`` rounds after the last improvement that counts, or at the last round, and
    keeps that improvement's iteration as the best."""
    best = {"mae": math.inf, "iteration": 0, "results": None}

    def callback(env):
        mae = env.evaluation_result_list[0][2]
        if mae < best["mae"] * (1.0 - min_improvement):
            best.update(mae=mae, iteration=env.iteration, results=env.evaluation_result_list)
        if env.iteration - best["iteration"] >= rounds or env.iteration == env.end_iteration - 1:
            raise lightgbm.callback.EarlyStopException(best["iteration"], best["results"])

    callback.order = 30  # where lightgbm.early_stopping runs among the callbacks
    return callback


def _check_value(name: str, parameter: str, value) -> None:
    """``value`` of searchable ``parameter`` is of its type and within SEARCHABLE's bounds."""
    _, integer, low, high = SEARCHABLE[parameter]
    kind = "an integer" if integer else "a number"
    ok = (validation._is_int(value) if integer else validation._is_number(value)) and low <= value <= high
    if not ok:
        raise ValueError(f"{name} must be {kind} in [{low}, {high}]; got {value!r}")


def _check_parameter_names(name: str, names) -> None:
    unknown = sorted(set(names) - set(SEARCHABLE))
    if unknown:
        raise ValueError(f"{name} holds unknown parameter {unknown[0]!r}; allowed: "
                         f"{sorted(SEARCHABLE)}")


def check_space(name: str, space) -> None:
    """A search space: a non-empty {parameter of SEARCHABLE: [low, high]} with low ≤ high, both
    within the parameter's bounds (low == high fixes the parameter). Else ValueError naming
    ``name``, the value and what is allowed (the evaluation stage's rules use it)."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{name} must be a non-empty dict {{parameter: [low, high]}} with "
                         f"parameters from {sorted(SEARCHABLE)}; got {space!r}")
    _check_parameter_names(name, space)
    for parameter, bounds in space.items():
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise ValueError(f"{name}[{parameter!r}] must be a range [low, high]; got {bounds!r}")
        for value in bounds:
            _check_value(f"{name}[{parameter!r}] bounds", parameter, value)
        if bounds[0] > bounds[1]:
            raise ValueError(f"{name}[{parameter!r}] must be a range [low, high] with low ≤ "
                             f"high; got {bounds!r}")


def check_candidates(name: str, candidates) -> None:
    """Candidates: a non-empty list of non-empty {parameter of SEARCHABLE: value} dicts."""
    if not isinstance(candidates, (list, tuple)) or not candidates or not all(
            isinstance(c, dict) and c for c in candidates):
        raise ValueError(f"{name} must be a non-empty list of {{parameter: value}} dicts with "
                         f"parameters from {sorted(SEARCHABLE)}; got {candidates!r}")
    for i, candidate in enumerate(candidates):
        _check_parameter_names(f"{name}[{i}]", candidate)
        for parameter, value in candidate.items():
            _check_value(f"{name}[{i}][{parameter!r}]", parameter, value)


def random_candidates(space: dict, n_candidates: int, seed: int) -> list[dict]:
    """``n_candidates`` parameter sets drawn from ``space`` ({parameter: [low, high]}), each
    parameter log-uniformly or uniformly as SEARCHABLE says, integers rounded; floats kept to
    four significant digits so that tables and saved models read cleanly. The same ``space``,
    ``n_candidates`` and ``seed`` give the same list."""
    check_space("space", space)
    validation.positive_int("n_candidates", n_candidates)
    validation.non_negative_int("seed", seed)
    rng = np.random.default_rng([seed, _CANDIDATE_STREAM])
    names = sorted(space)
    candidates = []
    for _ in range(n_candidates):
        candidate = {}
        for parameter in names:
            log, integer, _, _ = SEARCHABLE[parameter]
            low, high = space[parameter]
            if log:
                value = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                value = rng.uniform(low, high)
            value = int(round(value)) if integer else float(f"{value:.4g}")
            candidate[parameter] = min(max(value, low), high)  # rounding may step past a bound
        candidates.append(candidate)
    return candidates


def _target_values(frame: pd.DataFrame, target: str) -> np.ndarray:
    return forward_transform(TARGET_TRANSFORMS.get(target), frame[target].to_numpy(dtype=float))


class LightGBMBaseline:
    """One LightGBM regressor per target, tuned per target on the validation split.

    ``num_boost_round`` caps the trees (set it high: early stopping should end every fit);
    ``early_stopping_rounds`` without a validation MAE lower by more than ``min_improvement``
    (relative) than the best ends a candidate. After ``fit``,
    ``chosen[target]`` holds the chosen parameters, the best iteration, its validation MAE,
    ``cap_reached`` and the seconds of the search and of the refit; ``search_results`` every
    candidate tried.
    """

    def __init__(self, seed: int = 0, num_threads: int = 2, num_boost_round: int = 100000,
                 early_stopping_rounds: int = 50, min_improvement: float = 0.0):
        for name, value in (("num_threads", num_threads), ("num_boost_round", num_boost_round),
                            ("early_stopping_rounds", early_stopping_rounds)):
            validation.positive_int(name, value)
        validation.non_negative_int("seed", seed)
        validation.unit_interval("min_improvement", min_improvement)
        self.seed, self.num_threads = seed, num_threads
        self.num_boost_round, self.early_stopping_rounds = num_boost_round, early_stopping_rounds
        self.min_improvement = min_improvement
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

    def _train(self, candidate: dict, x_train, y_train, x_val, y_val) -> dict:
        """One candidate with early stopping: {booster, best_iteration, val_mae, cap_reached,
        seconds}. ``cap_reached``: all ``num_boost_round`` rounds ran, early stopping never
        ended the fit (the booster is kept whole to count them: ``lightgbm.train`` would
        otherwise cut it to the best iteration)."""
        start = time.perf_counter()
        # A fresh Dataset per candidate: min_child_samples changes how bins are filtered.
        params = self._params(candidate)
        train_set = lightgbm.Dataset(x_train, y_train, feature_name=FEATURES, params=params)
        val_set = lightgbm.Dataset(x_val, y_val, reference=train_set, params=params)
        booster = lightgbm.train(
            params, train_set, num_boost_round=self.num_boost_round,
            valid_sets=[val_set], valid_names=["val"], keep_training_booster=True,
            callbacks=[_early_stopping(self.early_stopping_rounds, self.min_improvement)])
        # LightGBM's own l1 at the best iteration (labels held in float32: within 1e-6 of the
        # float64 MAE); predicting the validation split again would cost as much as the fit.
        val_mae = float(booster.best_score["val"]["l1"])
        return {"booster": booster, "best_iteration": int(booster.best_iteration),
                "val_mae": val_mae,
                "cap_reached": booster.current_iteration() >= self.num_boost_round,
                "seconds": time.perf_counter() - start}

    def fit(self, train_frame: pd.DataFrame, val_frame: pd.DataFrame,
            candidates: list | None = None, data_manifest_sha256: str | None = None,
            search_rows: int | None = None) -> "LightGBMBaseline":
        """Try every candidate per target; keep the best on validation MAE.

        ``candidates``: a list of {parameter: value} (``random_candidates`` draws them; a grid
        is a list too), or {target: such a list} (a replicate refits each target's chosen
        candidate); None draws DEFAULT_CANDIDATES from DEFAULT_SPACE with this model's seed.
        ``search_rows``: search on that many training rows (seeded subsample), then refit the
        chosen candidate on all of them; None searches on every row (and refits nothing).
        """
        if candidates is None:
            candidates = random_candidates(DEFAULT_SPACE, DEFAULT_CANDIDATES, self.seed)
        if isinstance(candidates, dict) and candidates and set(candidates) <= set(TARGETS):
            if sorted(candidates) != sorted(TARGETS):
                raise ValueError(f"candidates per target must name every target {TARGETS}; "
                                 f"got {sorted(candidates)}")
            per_target = candidates
            for target, listed in per_target.items():
                check_candidates(f"candidates[{target!r}]", listed)
        else:
            check_candidates("candidates", candidates)
            per_target = {t: candidates for t in TARGETS}
        if search_rows is not None:
            validation.positive_int("search_rows", search_rows)
        for name, frame in (("train_frame", train_frame), ("val_frame", val_frame)):
            missing = [c for c in FEATURES + TARGETS if c not in frame.columns]
            if missing:
                raise ValueError(f"{name} is missing column {missing[0]!r}")
            check_features(frame[FEATURES])
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
            best, search_s = None, 0.0
            for index, candidate in enumerate(per_target[target]):
                fitted = self._train(candidate, xs, ys, x_val, y_val)
                search_s += fitted["seconds"]
                row = {"target": target, "candidate": index, **candidate,
                       **{k: fitted[k] for k in ("best_iteration", "val_mae", "cap_reached")},
                       "seconds": fitted["seconds"], "train_rows": int(len(xs))}
                self.search_results.append(row)
                progress.report(f"LightGBM {target}: candidate {index + 1}/"
                                f"{len(per_target[target])} in {fitted['seconds']:.0f} s, "
                                f"{fitted['best_iteration']} rounds")
                if best is None or fitted["val_mae"] < best[0]["val_mae"]:
                    best = (row, fitted, candidate)
            row, fitted, candidate = best
            refit_s = 0.0
            if subsample is not None:  # refit the chosen candidate on every training row
                fitted = self._train(candidate, x_train, y_train, x_val, y_val)
                refit_s = fitted["seconds"]
            self.chosen[target] = {
                "params": dict(candidate), "candidate": row["candidate"],
                "best_iteration": fitted["best_iteration"], "val_mae": fitted["val_mae"],
                "cap_reached": fitted["cap_reached"], "train_rows": int(len(x_train)),
                "search_s": search_s, "refit_s": refit_s}
            # Keep only the trees up to the best iteration: what is saved is what predicts.
            self.boosters[target] = lightgbm.Booster(model_str=fitted["booster"].model_to_string(
                num_iteration=fitted["best_iteration"]))
        return self

    def search_table(self) -> pd.DataFrame:
        """Every candidate tried: target, candidate index, parameters, best iteration,
        validation MAE, cap_reached, seconds, training rows."""
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
                             "early_stopping_rounds": self.early_stopping_rounds,
                             "min_improvement": self.min_improvement},
                "search_rows": self.search_rows,
                "lightgbm_version": lightgbm.__version__}
        return atomic_write_text(folder / FILE_META, json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, folder, data_manifest_sha256: str | None = None) -> "LightGBMBaseline":
        """Read a saved baseline; a foreign JSON, a changed model file, other features, or
        (when ``data_manifest_sha256`` is given) another data set → ValueError."""
        folder = Path(folder)
        path = folder / FILE_META
        meta = read_json(path, FORMAT, "a D2TL Coverage LightGBM baseline",
                         "the evaluation stage (notebook 04_evaluate) fits and saves it")
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



def lightgbm_chosen(name, v):
    """A rule: {target: LightGBM parameters} for every target (the chosen candidates)."""
    if not isinstance(v, dict) or sorted(v) != sorted(TARGETS):
        raise ValueError(f"{name} must map each target {TARGETS} to its LightGBM parameters; "
                         f"got {v!r}")
    for target, candidate in v.items():
        check_candidates(f"{name}[{target!r}]", [candidate])


def lightgbm_space(name, v):
    """A rule: a LightGBM search space, {parameter: [low, high]} (``check_space``)."""
    check_space(name, v)
