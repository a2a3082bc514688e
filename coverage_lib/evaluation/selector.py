"""The Selector: the project's prediction API, a cascade of a fast primary and a physics backup.

The primary (by default the MLP) answers a link unless a gate sends it to the backup (by
default the Mamba-3 with its law head); the backup runs only on the links sent to it. The
gates need nothing from the backup, and are checked in this order (``reason`` names the first
that held):

1. ``out_of_domain`` — a feature lies outside the training split's [min, max]
   (``dataset_stats["features"]``) or outside its in-distribution range
   (``dataset_stats["in_distribution_ranges"]``): the primary was never fitted there. Rows it
   settles cost the primary nothing.
2. ``physics_rule`` — the primary's answer breaks a rule of the book's physics page, judged
   with ``physics.rules.ROUTING_TOLERANCES``. By default the rules that read the answer alone
   (``CASCADE_RULES``: area = π·r²/10⁶, the SINR and QoS identities, QoS in [0, 1], radius in
   [0, d_max]), which cost no extra pass; the monotonicity rules (power and radius against
   distance, power against rain) can be added through ``rules`` and cost two more primary rows
   per row (the evaluation's gate table measures what each earns).
3. ``low_confidence`` — the confidence gate (``confidence.ConfidenceGate``, fitted on
   validation) predicts that the primary's answer is worse than the backup's by more than the
   score threshold.

One number sets the threshold: ``tolerance`` (``selector_tolerance``), the noise-free error a
user accepts beyond the backup's, per target, in units of the oracle's MAE (the shadow fading)
where the target is noisy (received power, SINR, QoS) and of the backup's own noise-free MAE
where it is not (radius, area). ``fit_thresholds`` fits the gate on one half of the validation
split and, on the other half, takes the fewest rows to the backup for which every target's mean
noise-free error stays within the tolerance of the backup's; both are saved and reused, never
refitted on test data.

``predict`` (a DataFrame) and ``predict_array`` (a (rows, 13) array) are the cascade. ``route``
is the diagnostic form: both backbones on every row, every gate's flag, the gate's score and the
backbones' ``divergence`` (reported, not a gate: it needs the backup); its answers are
``predict``'s. Any registered pair can be routed (``keys``); the default is the registry's
primary and backup.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..models import registry
from ..training import checkpoint_io
from ..core.schema import FEATURES, TARGET_INDEX, TARGETS
from ..core.io import read_json, sha256_file, write_json
from ..core.links import check_features, feature_array, frame_array
from ..physics.oracle import oracle_predictions
from ..physics.rules import (MOVED, ROUTING_TOLERANCES, TOLERANCES, excess_array,
                             rule_excess_array)
from .confidence import MIN_ROWS, ConfidenceGate

REASONS = ("out_of_domain", "physics_rule", "low_confidence")  # in this order
# The rules judged from the primary's answer alone (no moved copies, no extra pass).
CASCADE_RULES = ("area_identity", "sinr_identity", "qos_identity", "qos_range", "radius_range")
DEFAULT_TOLERANCE = 0.01
THRESHOLDS_FORMAT = "d2tl-coverage-selector-thresholds/2"
NEVER = None          # score threshold of a gate that routes no row
EVERY = -1e300        # score threshold of a gate that routes every in-domain row


def routes() -> tuple[str, str]:
    """The default pair: the registry keys of the primary and the backup backbone."""
    return registry.by_role("primary").key, registry.by_role("backup").key


def check_tolerance(value, name: str = "selector_tolerance") -> float:
    """``value`` as a tolerance (a finite number ≥ 0), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
            or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a finite number ≥ 0 (the noise-free error "
                         f"accepted beyond the backup's, in units of the oracle's MAE); "
                         f"got {value!r}")
    return float(value)


def noise_free_truth(frame: pd.DataFrame, gap: float) -> np.ndarray:
    """(rows, 5): the noise-free truth of each target (medians of the noisy ones)."""
    return oracle_predictions(frame, gap)[TARGETS].to_numpy(dtype=float)


def tolerance_threshold(forced: np.ndarray, score: np.ndarray, err_primary: np.ndarray,
                        err_backup: np.ndarray, scales: np.ndarray, tolerance: float):
    """The score threshold that sends the fewest rows to the backup (besides the ``forced``
    ones) while every target's mean error stays within ``tolerance × scales`` of the backup's
    (rows routed in decreasing score). Returns (threshold, share of rows routed): ``NEVER``
    when no row need go, ``EVERY`` when even all rows are not enough."""
    n = len(score)
    free = np.flatnonzero(~forced)
    order = free[np.argsort(-score[free], kind="stable")]
    start = np.where(forced[:, None], err_backup, err_primary).sum(axis=0)
    gain = (err_primary - err_backup)[order]
    sums = start - np.vstack([np.zeros((1, err_primary.shape[1])), np.cumsum(gain, axis=0)])
    within = ((sums - err_backup.sum(axis=0)) / max(n, 1)
              <= tolerance * scales * (1 + 1e-12)).all(axis=1)
    k = int(np.argmax(within)) if within.any() else len(order)
    if k == 0:
        return NEVER, float(forced.mean()) if n else 0.0
    if k >= len(order):
        return EVERY, 1.0
    high, low = score[order[k - 1]], score[order[k]]
    return float((high + low) / 2 if high > low else high), float(forced.mean() + k / n)


class Selector:
    """Per row: the primary's answer, or the backup's where a gate says so (module docstring).

    ``primary`` and ``backup`` are CoverageModels (``keys``: their registry keys, default
    ``routes()``); ``dataset_stats`` is the data set's ``feature_stats.json`` (training min/max,
    in-distribution ranges). ``rules`` and ``tolerances`` (merged over
    ``physics.rules.ROUTING_TOLERANCES``) choose the physics gate's rules.
    """

    def __init__(self, primary, backup, dataset_stats: dict, thresholds: dict | None = None,
                 rules=CASCADE_RULES, tolerances: dict | None = None, keys=None):
        if not isinstance(dataset_stats, dict) or "features" not in dataset_stats \
                or "in_distribution_ranges" not in dataset_stats:
            raise ValueError("dataset_stats must be the data set's feature_stats.json content, "
                             "with 'features' (training min/max) and 'in_distribution_ranges'")
        missing = [c for c in FEATURES if c not in dataset_stats["features"]]
        if missing:
            raise ValueError(f"dataset_stats['features'] lacks {missing[0]!r}")
        unknown = [r for r in [*rules, *(tolerances or {})] if r not in TOLERANCES]
        if unknown:
            raise ValueError(f"unknown rule {unknown[0]!r}; known: {list(TOLERANCES)}")
        self.keys = tuple(keys) if keys is not None else routes()
        bad = [k for k in self.keys if k not in registry.BACKBONES]
        if len(self.keys) != 2 or bad or self.keys[0] == self.keys[1]:
            raise ValueError(f"keys must be two different registered backbones (primary, backup) "
                             f"of {list(registry.BACKBONES)}; got {keys!r}")
        self.primary, self.backup = primary, backup
        self.dataset_stats, self.rules = dataset_stats, tuple(rules)
        self.tolerances = {**ROUTING_TOLERANCES, **(tolerances or {})}
        self.thresholds, self.gate = None, None
        self.fingerprint: dict = {}  # checkpoint checksums, set by from_checkpoints
        self._calibration = None     # validation's second half, kept by fit_thresholds
        if thresholds is not None:
            self._set_thresholds(thresholds)
        ranges = {c: (s["min"], s["max"]) for c, s in dataset_stats["features"].items()
                  if c in FEATURES}
        for column, (low, high) in dataset_stats["in_distribution_ranges"].items():
            ranges[column] = (max(ranges[column][0], low), min(ranges[column][1], high))
        self.domain = ranges  # {feature: (low, high)}: the tighter of the two bounds
        self._domain_low = np.array([ranges[c][0] for c in FEATURES], dtype=float)
        self._domain_high = np.array([ranges[c][1] for c in FEATURES], dtype=float)

    @property
    def physics_assumptions(self) -> dict:
        """The edge SINR and implementation gap of the data both backbones learnt from (the
        primary's; ``physics.rules`` judges ``selector.predict`` with them)."""
        return self.primary.physics_assumptions

    @property
    def tolerance(self) -> float:
        self._require_thresholds()
        return self.thresholds["tolerance"]

    def _set_thresholds(self, thresholds: dict) -> None:
        if not isinstance(thresholds, dict):
            raise ValueError(f"thresholds must be a dict; got {type(thresholds).__name__}")
        check_tolerance(thresholds.get("tolerance"))
        value = thresholds.get("score_threshold", "absent")
        if value is not NEVER and (isinstance(value, bool)
                                   or not isinstance(value, (int, float))):
            raise ValueError(f"thresholds' 'score_threshold' must be a number or null (no row "
                             f"routed for low confidence); got {value!r}")
        scales = thresholds.get("scales")
        if not isinstance(scales, dict) or set(scales) != set(TARGETS):
            raise ValueError(f"thresholds' 'scales' must give each of {list(TARGETS)}; "
                             f"got {scales!r}")
        self.gate = ConfidenceGate.from_json(thresholds.get("gate"))
        self.thresholds = dict(thresholds)

    @classmethod
    def from_checkpoints(cls, primary_path, backup_path, data_manifest_sha256: str | None = None,
                         thresholds_path=None, model_overrides: dict | None = None,
                         **options) -> "Selector":
        """Both backbones from their checkpoints (``training.checkpoint_io.load_checkpoint``),
        the training domain from the primary's checkpoint, thresholds from ``thresholds_path``
        if given; ``options`` (``rules``, ``tolerances``, ``keys``) go to the constructor.

        Checkpoints from two data sets, a checkpoint without the data set's statistics, or a
        thresholds file fitted for other checkpoints → ValueError.
        """
        primary = checkpoint_io.load_checkpoint(primary_path, data_manifest_sha256)
        backup = checkpoint_io.load_checkpoint(backup_path, data_manifest_sha256, model_overrides)
        if primary["data_manifest_sha256"] != backup["data_manifest_sha256"]:
            raise ValueError(f"{primary_path} and {backup_path} were trained on different data "
                             f"sets (MANIFEST sha256 {primary['data_manifest_sha256']} vs "
                             f"{backup['data_manifest_sha256']})")
        if not primary.get("dataset_stats"):
            raise ValueError(f"{primary_path} carries no dataset_stats (the training domain); "
                             f"train with dataset_stats=load_stats(data folder)")
        selector = cls(primary["model"], backup["model"], primary["dataset_stats"], **options)
        selector.fingerprint = {"primary_checkpoint_sha256": sha256_file(primary_path),
                                "backup_checkpoint_sha256": sha256_file(backup_path),
                                "data_manifest_sha256": primary["data_manifest_sha256"]}
        if thresholds_path is not None:
            selector.load_thresholds(thresholds_path)
        return selector

    def with_primary(self, primary, key: str) -> "Selector":
        """The same backup, domain and rules with another registered primary (unfitted)."""
        return Selector(primary, self.backup, self.dataset_stats, rules=self.rules,
                        tolerances=self.tolerances, keys=(key, self.keys[1]))

    # -- the gates, one by one: the cascade runs them in order (``predict_array``), ``route``
    # reports them all, and the frontier times each (``frontier.gate_costs``) ---------------

    def outside(self, x: np.ndarray) -> np.ndarray:
        """(rows, 13) bool: which features of each link lie outside the training domain."""
        return (x < self._domain_low) | (x > self._domain_high)

    def out_of_domain(self, features: pd.DataFrame) -> pd.Series:
        """Per row: the first feature outside the training domain, or "" if none."""
        return pd.Series(self._first_outside(frame_array(features)), index=features.index,
                         dtype=object)

    def _first_outside(self, x: np.ndarray) -> np.ndarray:
        outside = self.outside(x)
        first = np.array(FEATURES, dtype=object)[outside.argmax(axis=1)]
        return np.where(outside.any(axis=1), first, "").astype(object)

    def primary_with_rules(self, x: np.ndarray) -> tuple[np.ndarray, dict]:
        """The primary's answers on ``x`` and the routing rules' excess per row: one pass for
        the answer-only rules, the moved copies in the same batch for the others."""
        gap = self.physics_assumptions["implementation_gap_db"]
        if any(r in MOVED for r in self.rules):
            return rule_excess_array(self.primary.predict_array, x, self.rules, gap)
        y = np.asarray(self.primary.predict_array(x), dtype=float)
        return y, excess_array(x, y, {}, self.rules, gap)

    def rules_broken(self, excess: dict, rows: int) -> tuple[dict, np.ndarray]:
        """Per routing rule, the rows where it passes its tolerance; and per row, whether any
        rule does."""
        broken = {rule: excess[rule] > self.tolerances[rule] for rule in self.rules}
        return broken, np.logical_or.reduce([*broken.values(), np.zeros(rows, bool)])

    def _scaled(self, y: np.ndarray) -> np.ndarray:
        """Answers (rows, 5) on the primary's training scale (transform, over its std)."""
        return self.primary.normalizer.normalised_target_array(y)

    def confidence_score(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The confidence gate's score per row of links ``x`` and the primary's answers ``y``
        (the backup's predicted excess error)."""
        return self.gate.score(x, self._scaled(y))

    def low_confidence(self, score: np.ndarray) -> np.ndarray:
        """Per row, whether ``score`` passes the fitted threshold (the third gate)."""
        threshold = self.thresholds["score_threshold"]
        return np.zeros(len(score), bool) if threshold is NEVER else score > threshold

    def _require_thresholds(self):
        if self.thresholds is None:
            raise ValueError("the Selector has no thresholds: call fit_thresholds(val_frame) "
                             "or pass thresholds / thresholds_path")

    # -- the cascade -----------------------------------------------------------------------------

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """The five targets in physical units, plus ``routed_to`` (the registry key of the
        backbone that answered) and ``reason`` ("" or the first of REASONS that held). A
        missing or extra column, NaN or inf → ValueError naming the column."""
        y, code = self._cascade(frame_array(features))
        out = pd.DataFrame(y, columns=TARGET_INDEX, index=features.index)
        out["reason"], out["routed_to"] = self._labels(code)
        return out[[*TARGETS, "routed_to", "reason"]]

    def predict_array(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` without pandas: links (rows, 13) in FEATURES order → (targets (rows, 5)
        in TARGETS order, route code per row: 0 the primary answered, k ≥ 1 the backup did for
        ``REASONS[k − 1]``)."""
        return self._cascade(feature_array(x))

    def _cascade(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_thresholds()
        y = np.empty((len(x), len(TARGETS)))
        code = np.where(self.outside(x).any(axis=1), 1, 0)
        rest = np.flatnonzero(code == 0)
        if rest.size:
            answer, excess = self.primary_with_rules(x[rest])
            broken = self.rules_broken(excess, rest.size)[1]
            unsure = self.low_confidence(self.confidence_score(x[rest], answer))
            code[rest] = np.select([broken, unsure], [2, 3], 0)
            kept = code[rest] == 0
            y[rest[kept]] = answer[kept]
        routed = np.flatnonzero(code > 0)
        if routed.size:
            y[routed] = self.backup.predict_array(x[routed])
        return y, code

    def route(self, features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Every gate on every row, with both backbones run on all of them (the diagnostic form
        of ``predict``): (primary's predictions, backup's predictions, per-row flags):
        ``out_of_domain`` (first feature outside, or ""), ``physics_rule`` (bool),
        ``rules_broken`` (comma-separated names), ``confidence_score`` (the gate's predicted
        excess), ``divergence`` (the backbones' largest normalised difference: reported, not a
        gate), ``routed_to`` and ``reason``."""
        self._require_thresholds()
        x = frame_array(features)
        primary_y, excess = self.primary_with_rules(x)
        backup_y = np.asarray(self.backup.predict_array(x), dtype=float)
        broken, any_broken = self.rules_broken(excess, len(x))
        names = pd.Series("", index=features.index, dtype=object)
        for rule in self.rules:
            names = names + np.where(broken[rule], rule + ",", "")
        score = self.confidence_score(x, primary_y)
        flags = pd.DataFrame(index=features.index)
        flags["out_of_domain"] = self._first_outside(x)
        flags["physics_rule"] = any_broken
        flags["rules_broken"] = names.str.rstrip(",")
        flags["confidence_score"] = score
        flags["divergence"] = np.abs(self._scaled(primary_y) - self._scaled(backup_y)).max(
            axis=1) if len(x) else np.zeros(0)
        code = np.select([flags["out_of_domain"].to_numpy() != "", any_broken,
                          self.low_confidence(score)], [1, 2, 3], 0)
        flags["reason"], flags["routed_to"] = self._labels(code)
        frame = lambda y: pd.DataFrame(y, columns=TARGET_INDEX, index=features.index)  # noqa: E731
        return frame(primary_y), frame(backup_y), flags

    def _labels(self, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reason, routed_to) per row from the route codes (0: the primary, k: REASONS[k − 1])."""
        reason = np.array(("", *REASONS), dtype=object)[code]
        return reason, np.where(code == 0, self.keys[0], self.keys[1]).astype(object)

    def combine(self, primary_pred: pd.DataFrame, backup_pred: pd.DataFrame,
                flags: pd.DataFrame) -> pd.DataFrame:
        """``predict``'s answer from ``route``'s three frames (so a caller that also needs
        both backbones' own predictions runs them once)."""
        use_backup = (flags["routed_to"] == self.keys[1]).to_numpy()
        out = primary_pred[TARGETS].copy()
        out.loc[use_backup, TARGETS] = backup_pred.loc[use_backup, TARGETS].to_numpy()
        out["routed_to"], out["reason"] = flags["routed_to"], flags["reason"]
        return out

    # -- thresholds: fitted on validation, saved, reused ---------------------------------------

    def fit_thresholds(self, val_frame: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE,
                       seed: int = 0) -> dict:
        """Fit the confidence gate and its score threshold on the VALIDATION split (never call
        this on test data). The rows are shuffled with ``seed`` and halved: the gate learns the
        primary's excess noise-free error over the backup's (per target over its tolerance
        scale, the largest) on the first half; on the second, the threshold is the one that
        sends the fewest rows to the backup with every target's mean error within
        ``tolerance`` × its scale of the backup's (``tolerance_threshold``). The scales: the
        oracle's MAE against the noisy target where the target is noisy, the backup's
        noise-free MAE where it is not."""
        tolerance = check_tolerance(tolerance)
        features = check_features(val_frame[FEATURES])
        if len(features) < 2 * MIN_ROWS:
            raise ValueError(f"val_frame has {len(features)} rows; the Selector needs at least "
                             f"{2 * MIN_ROWS} (half to fit its gate, half to set its threshold)")
        x = frame_array(features)
        gap = self.physics_assumptions["implementation_gap_db"]
        primary_y, excess = self.primary_with_rules(x)
        backup_y = np.asarray(self.backup.predict_array(x), dtype=float)
        truth = noise_free_truth(val_frame, gap)
        noisy = val_frame[TARGETS].to_numpy(dtype=float)
        err_p, err_b = np.abs(primary_y - truth), np.abs(backup_y - truth)
        oracle = np.abs(noisy - truth).mean(axis=0)
        scales = np.where(oracle > 0, oracle, err_b.mean(axis=0))
        scales = np.maximum(scales, 1e-6 * np.abs(truth).mean(axis=0) + 1e-12)  # exact backups
        forced = self.outside(x).any(axis=1) | self.rules_broken(excess, len(x))[1]
        order = np.random.default_rng([seed, 30]).permutation(len(x))
        first, second = np.sort(order[: len(x) // 2]), np.sort(order[len(x) // 2:])
        target = ((err_p - err_b) / scales).max(axis=1)
        self.gate = ConfidenceGate.fit(x[first], self._scaled(primary_y[first]), target[first],
                                       seed=seed)
        score = self.confidence_score(x[second], primary_y[second])
        self._calibration = {"forced": forced[second], "score": score,
                             "err_primary": err_p[second], "err_backup": err_b[second],
                             "scales": scales}
        threshold, share = tolerance_threshold(forced[second], score, err_p[second],
                                               err_b[second], scales, tolerance)
        self.thresholds = {"tolerance": tolerance, "score_threshold": threshold,
                           "scales": dict(zip(TARGETS, map(float, scales))),
                           "validation_to_backup": share, "gate": self.gate.to_json(),
                           "pair": list(self.keys), "rules": list(self.rules),
                           "gate_rows": int(len(first)), "calibration_rows": int(len(second)),
                           "n_val_rows": int(len(x)), "fitted_on": "val split"}
        return self.thresholds

    def at_tolerance(self, tolerance: float) -> "Selector":
        """A copy of this fitted Selector whose score threshold is refitted on the same
        validation half for another ``tolerance`` (the frontier's operating points)."""
        if self._calibration is None:
            raise ValueError("at_tolerance needs a Selector fitted here (fit_thresholds)")
        tolerance = check_tolerance(tolerance)
        c = self._calibration
        threshold, share = tolerance_threshold(c["forced"], c["score"], c["err_primary"],
                                               c["err_backup"], c["scales"], tolerance)
        other = Selector(self.primary, self.backup, self.dataset_stats, rules=self.rules,
                         tolerances=self.tolerances, keys=self.keys)
        other.fingerprint, other._calibration = self.fingerprint, c
        other._set_thresholds({**self.thresholds, "tolerance": tolerance,
                               "score_threshold": threshold, "validation_to_backup": share})
        return other

    def save_thresholds(self, path) -> Path:
        """The thresholds (gate included), with the checksums of the checkpoints they were
        fitted for (JSON, written atomically)."""
        if self.thresholds is None:
            raise ValueError("no thresholds to save: call fit_thresholds(val_frame) first")
        return write_json(path, {"format": THRESHOLDS_FORMAT, **self.thresholds,
                                 **self.fingerprint})

    def load_thresholds(self, path) -> dict:
        """Reuse saved thresholds; a file fitted for other checkpoints or another pair →
        ValueError."""
        payload = read_json(path, THRESHOLDS_FORMAT, "a Selector thresholds file",
                            "fit the thresholds on validation (notebook 04_evaluate) first")
        del payload["format"]
        for key, value in self.fingerprint.items():
            if key in payload and payload[key] != value:
                raise ValueError(f"{path} was fitted for {key} {payload[key]}, not for the "
                                 f"checkpoints loaded here ({value}); refit on validation")
        if payload.get("pair", list(self.keys)) != list(self.keys):
            raise ValueError(f"{path} was fitted for the pair {payload['pair']}, not for "
                             f"{list(self.keys)}; refit on validation")
        self._set_thresholds({k: v for k, v in payload.items() if k not in self.fingerprint
                              and not k.endswith("_sha256")})
        return self.thresholds

    def routing_summary(self, predictions: pd.DataFrame) -> pd.DataFrame:
        """Rows and fraction per route and reason (see the module's ``routing_summary``)."""
        return routing_summary(predictions, self.keys)


def routing_summary(predictions: pd.DataFrame, keys=None) -> pd.DataFrame:
    """Rows and fraction per route and reason (every reason listed, zeros included)."""
    if "routed_to" not in predictions or "reason" not in predictions:
        raise ValueError("predictions must be the Selector's output, with 'routed_to' and "
                         "'reason' columns")
    primary, backup = keys or routes()
    index = [(primary, "")] + [(backup, reason) for reason in REASONS]
    counts = predictions.groupby(["routed_to", "reason"]).size()
    rows = [counts.get(key, 0) for key in index]
    n = max(len(predictions), 1)
    return pd.DataFrame({"rows": rows, "fraction": [r / n for r in rows]},
                        index=pd.MultiIndex.from_tuples(index, names=["routed_to", "reason"]))
