"""The Selector: the project's prediction API, answering each row with the MLP or the Mamba-3.

The MLP (fast, primary) answers a row unless one of four things holds, checked in this order
(the tests that need nothing but the input first, so that rows they settle cost the MLP
nothing); then the Mamba-3 (the physics backup) answers, and ``reason`` names the first that
held:

1. ``out_of_domain`` — a feature lies outside the training split's [min, max]
   (``dataset_stats["features"]``) or outside its in-distribution range
   (``dataset_stats["in_distribution_ranges"]``): the MLP was never fitted there.
2. ``more_accurate`` — on the validation split the MLP was not at least as accurate as the
   backup on every target for this row's scenario and LOS state (``noise_free_errors``: the
   error against the noise-free truth, each target in its training transform and over its
   training-split std; ``fit_thresholds``). The MLP keeps a group only where it is as good on
   all five: a Selector that answers a row with one backbone cannot trade one target's error
   for another's. Since the backup got its law head it obeys rules 1 and 2 by construction
   and is often the more accurate in domain too: the MLP then answers only where validation
   says it is at least as good, and stays the low-latency answer there.
3. ``physics_rule`` — the MLP's output for the row breaks a physics rule of the book's physics page
   ("Physics rules"), judged with the tolerances and finite-difference steps of
   ``physics.rules`` (one place for both; routing uses its ``ROUTING_TOLERANCES``, which
   ignore violations smaller than the backbones' own precision):
   rule 1, received power non-increasing in distance (×1.1) and in rain rate (+5 mm/h);
   rule 2, radius independent of distance (×1.1); rule 3, area = π·r²/10⁶;
   rule 4, SINR = P − N − 10·log10(1 + 10^(INR/10)); rule 5, qos = qos(SINR), qos in [0, 1],
   radius in [0, d_max]. The row and its moved copies go through the MLP in one batched
   pass. (Rule 2's tx-power and gain monotonicity can be added through ``rules``; they are
   left out by default to keep routing at three MLP rows per row, and are judged over whole
   sets by ``physics.rules.check``.) The backup is not checked: its law head obeys rules 1
   and 2 by construction and its outputs are consistent (rules 3–5).
4. ``divergence`` — the two backbones disagree: max over targets of ``|MLP − Mamba|`` in
   normalised units (each target in its training transform, log10 for radius and area,
   divided by its training-split standard deviation) exceeds ``thresholds["divergence"]``.
   The threshold is a quantile of that quantity on the validation split (``fit_thresholds``),
   saved and reused, never refitted on test data.

``predict`` (a DataFrame) and ``predict_array`` (a (rows, 13) array) run the backup on every
row (it answers the routed rows and is the divergence's other half) and the MLP only on the
rows the first two tests leave to it. ``route`` is the diagnostic form: every test on every
row, with the flags the evaluation tabulates; its answers are ``predict``'s.
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
from ..physics.rules import ROUTING_TOLERANCES, rule_excess_array, TOLERANCES

REASONS = ("out_of_domain", "more_accurate", "physics_rule", "divergence")  # in this order
GROUPS = ("scenario", "los")  # validation picks the more accurate backbone per group
ROUTING_RULES = ("power_vs_distance", "power_vs_rain", "radius_vs_distance", "area_identity",
                 "sinr_identity", "qos_identity", "qos_range", "radius_range")
THRESHOLDS_FORMAT = "d2tl-coverage-selector-thresholds/1"


def routes() -> tuple[str, str]:
    """The ``routed_to`` labels: the registry keys of the primary and the backup backbone."""
    return registry.by_role("primary").key, registry.by_role("backup").key


class Selector:
    """Per row: the MLP's answer, or the Mamba-3's where the training domain, validation's
    verdict on the row's group, a physics rule or the backbones' disagreement says the MLP is
    not to be trusted (see the module docstring).

    ``mlp_model`` and ``mamba_model`` are CoverageModels; the divergence scale is the MLP's
    normaliser (training-split std of each transformed target). ``dataset_stats`` is the data
    set's ``feature_stats.json`` (training-split min/max, in-distribution ranges). ``rules``
    and ``tolerances`` (merged over ``physics.rules.TOLERANCES``) choose the routing rules.
    """

    def __init__(self, mlp_model, mamba_model, dataset_stats: dict, thresholds: dict | None = None,
                 rules=ROUTING_RULES, tolerances: dict | None = None):
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
        self.mlp, self.mamba = mlp_model, mamba_model
        self.dataset_stats, self.rules = dataset_stats, tuple(rules)
        self.tolerances = {**ROUTING_TOLERANCES, **(tolerances or {})}
        self.thresholds = None
        self.fingerprint: dict = {}  # checkpoint checksums, set by from_checkpoints
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
        MLP's; ``physics.rules`` judges ``selector.predict`` with them)."""
        return self.mlp.physics_assumptions

    def _set_thresholds(self, thresholds: dict) -> None:
        value = thresholds.get("divergence") if isinstance(thresholds, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"thresholds must hold 'divergence', a number ≥ 0; "
                             f"got {thresholds!r}")
        groups = thresholds.get("backup_more_accurate", [])
        if not isinstance(groups, list) or not all(
                isinstance(g, list) and len(g) == len(GROUPS) for g in groups):
            raise ValueError(f"thresholds' 'backup_more_accurate' must be a list of "
                             f"[scenario, los] pairs; got {groups!r}")
        self.thresholds = {**thresholds, "backup_more_accurate": groups}

    @classmethod
    def from_checkpoints(cls, mlp_path, mamba_path, data_manifest_sha256: str | None = None,
                         thresholds_path=None, model_overrides: dict | None = None,
                         **options) -> "Selector":
        """Both backbones from their checkpoints (``training.checkpoint_io.load_checkpoint``), the training
        domain from the MLP's checkpoint, thresholds from ``thresholds_path`` if given;
        ``options`` (``rules``, ``tolerances``) go to the constructor.

        Checkpoints from two data sets, a checkpoint without the data set's statistics, or a
        thresholds file fitted for other checkpoints → ValueError.
        """
        mlp = checkpoint_io.load_checkpoint(mlp_path, data_manifest_sha256)
        mamba = checkpoint_io.load_checkpoint(mamba_path, data_manifest_sha256, model_overrides)
        if mlp["data_manifest_sha256"] != mamba["data_manifest_sha256"]:
            raise ValueError(f"{mlp_path} and {mamba_path} were trained on different data sets "
                             f"(MANIFEST sha256 {mlp['data_manifest_sha256']} vs "
                             f"{mamba['data_manifest_sha256']})")
        if not mlp.get("dataset_stats"):
            raise ValueError(f"{mlp_path} carries no dataset_stats (the training domain); train "
                             f"with dataset_stats=load_stats(data folder)")
        selector = cls(mlp["model"], mamba["model"], mlp["dataset_stats"], **options)
        selector.fingerprint = {"mlp_checkpoint_sha256": sha256_file(mlp_path),
                                "mamba_checkpoint_sha256": sha256_file(mamba_path),
                                "data_manifest_sha256": mlp["data_manifest_sha256"]}
        if thresholds_path is not None:
            selector.load_thresholds(thresholds_path)
        return selector

    # -- the routing tests -----------------------------------------------------------------------

    def _outside(self, x: np.ndarray) -> np.ndarray:
        """(rows, 13) bool: which features of each link lie outside the training domain."""
        return (x < self._domain_low) | (x > self._domain_high)

    def out_of_domain(self, features: pd.DataFrame) -> pd.Series:
        """Per row: the first feature outside the training domain, or "" if none."""
        return pd.Series(self._first_outside(frame_array(features)), index=features.index,
                         dtype=object)

    def _first_outside(self, x: np.ndarray) -> np.ndarray:
        outside = self._outside(x)
        first = np.array(FEATURES, dtype=object)[outside.argmax(axis=1)]
        return np.where(outside.any(axis=1), first, "").astype(object)

    def _differences(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``differences`` on (rows, 5) arrays."""
        scale = self.mlp.normalizer.normalised_target_array
        return np.abs(scale(a) - scale(b))

    def _divergence(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``divergence`` on (rows, 5) arrays."""
        return self._differences(a, b).max(axis=1) if len(a) else np.zeros(0)

    def _rules_broken(self, excess: dict, rows: int) -> tuple[dict, np.ndarray]:
        """From ``rule_excess_array``'s excesses: per routing rule, the rows where it passes its
        tolerance; and per row, whether any rule does."""
        broken = {rule: excess[rule] > self.tolerances[rule] for rule in self.rules}
        return broken, np.logical_or.reduce([*broken.values(), np.zeros(rows, bool)])

    def differences(self, a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
        """Per row and target: ``|a − b|`` with each target in its training transform (log10
        for radius and area) and divided by its training-split std (the MLP's normaliser)."""
        return pd.DataFrame(self._differences(a[TARGETS].to_numpy(dtype=float),
                                              b[TARGETS].to_numpy(dtype=float)),
                            columns=TARGET_INDEX, index=a.index)

    def divergence(self, mlp_pred: pd.DataFrame, mamba_pred: pd.DataFrame) -> pd.Series:
        """Per row: max over targets of ``|MLP − Mamba|`` / std, each target in its training
        transform (log10 for radius and area) and std from the training split."""
        return self.differences(mlp_pred, mamba_pred).max(axis=1)

    def _backup_group(self, x: np.ndarray) -> np.ndarray:
        """Per row: does validation say the backup is the more accurate for its group?"""
        keys = x[:, [FEATURES.index(c) for c in GROUPS]]
        chosen = np.zeros(len(x), dtype=bool)
        for group in self.thresholds["backup_more_accurate"]:
            chosen |= (keys == np.asarray(group, dtype=float)).all(axis=1)
        return chosen

    def _require_thresholds(self):
        if self.thresholds is None:
            raise ValueError("the Selector has no divergence threshold: call "
                             "fit_thresholds(val_frame) or pass thresholds / thresholds_path")

    def route(self, features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Every test on every row (the diagnostic form of ``predict``): (MLP predictions,
        Mamba predictions, per-row flags): ``out_of_domain`` (first feature outside, or ""),
        ``physics_rule`` (bool), ``rules_broken`` (comma-separated names), ``divergence``
        (normalised), ``routed_to`` and ``reason``."""
        x = frame_array(features)
        self._require_thresholds()
        mlp_y, excess = rule_excess_array(self.mlp.predict_array, x, self.rules,
                                          self.physics_assumptions["implementation_gap_db"])
        mamba_y = self.mamba.predict_array(x)
        broken, any_broken = self._rules_broken(excess, len(x))
        names = pd.Series("", index=features.index, dtype=object)
        for rule in self.rules:
            names = names + np.where(broken[rule], rule + ",", "")
        flags = pd.DataFrame(index=features.index)
        flags["out_of_domain"] = self._first_outside(x)
        flags["physics_rule"] = any_broken
        flags["rules_broken"] = names.str.rstrip(",")
        flags["divergence"] = divergence = self._divergence(mlp_y, mamba_y)
        code = np.select([flags["out_of_domain"].to_numpy() != "", self._backup_group(x),
                          flags["physics_rule"].to_numpy(bool),
                          divergence > self.thresholds["divergence"]],
                         np.arange(1, len(REASONS) + 1), 0)
        flags["reason"], flags["routed_to"] = self._labels(code)
        frame = lambda y: pd.DataFrame(y, columns=TARGET_INDEX, index=features.index)  # noqa: E731
        return frame(mlp_y), frame(mamba_y), flags

    @staticmethod
    def _labels(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reason, routed_to) per row from the route codes (0: the MLP, k: REASONS[k − 1])."""
        primary, backup = routes()
        reason = np.array(("", *REASONS), dtype=object)[code]
        return reason, np.where(code == 0, primary, backup).astype(object)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """The five targets in physical units, plus ``routed_to`` (the registry key of the backbone
        that answered: "mlp" or "mamba3") and ``reason`` ("" or the first of REASONS that
        held). A missing or extra column, NaN or inf → ValueError naming the column."""
        y, code = self._predict_checked(frame_array(features))
        out = pd.DataFrame(y, columns=TARGET_INDEX, index=features.index)
        out["reason"], out["routed_to"] = self._labels(code)
        return out[[*TARGETS, "routed_to", "reason"]]

    def predict_array(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` without pandas: links (rows, 13) in FEATURES order → (targets (rows, 5)
        in TARGETS order, route code per row: 0 the MLP answered, k ≥ 1 the backup did for
        ``REASONS[k − 1]``)."""
        return self._predict_checked(feature_array(x))

    def _predict_checked(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_thresholds()
        y = np.array(self.mamba.predict_array(x), dtype=float)  # a copy: MLP rows go in
        code = np.where(self._outside(x).any(axis=1), 1, 0)
        code[(code == 0) & self._backup_group(x)] = 2
        rest = np.flatnonzero(code == 0)
        if rest.size:
            mlp_y, excess = rule_excess_array(self.mlp.predict_array, x[rest], self.rules,
                                              self.physics_assumptions["implementation_gap_db"])
            code[rest] = np.select([self._rules_broken(excess, rest.size)[1],
                                    self._divergence(mlp_y, y[rest])
                                    > self.thresholds["divergence"]], [3, 4], 0)
            kept = code[rest] == 0
            y[rest[kept]] = mlp_y[kept]
        return y, code

    @staticmethod
    def combine(mlp_pred: pd.DataFrame, mamba_pred: pd.DataFrame,
                flags: pd.DataFrame) -> pd.DataFrame:
        """``predict``'s answer from ``route``'s three frames (so a caller that also needs
        both backbones' own predictions runs them once): per row the routed backbone's five
        targets, plus ``routed_to`` and ``reason``."""
        use_mamba = (flags["routed_to"] == routes()[1]).to_numpy()
        out = mlp_pred[TARGETS].copy()
        out.loc[use_mamba, TARGETS] = mamba_pred.loc[use_mamba, TARGETS].to_numpy()
        out["routed_to"], out["reason"] = flags["routed_to"], flags["reason"]
        return out

    # -- thresholds: fitted on validation, saved, reused ---------------------------------------

    def fit_thresholds(self, val_frame: pd.DataFrame, quantile: float = 0.99) -> dict:
        """Divergence threshold = ``quantile`` of the per-row normalised divergence over the
        VALIDATION split (all its rows), so about 1 − quantile of in-distribution rows are
        routed for disagreement alone; and the (scenario, LOS) groups the backup answers
        (``more_accurate``): every group where the MLP's mean noise-free validation error
        (``noise_free_errors``) is not at least as low as the backup's on every one of the five
        targets. Never call this on test data."""
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must lie in (0, 1]; got {quantile!r}")
        features = check_features(val_frame[FEATURES])
        if not len(features):
            raise ValueError("val_frame has no rows")
        mlp_pred, mamba_pred = self.mlp.predict(features), self.mamba.predict(features)
        div = self.divergence(mlp_pred, mamba_pred)
        keys = val_frame[list(GROUPS)].reset_index(drop=True)
        means = {name: pd.concat([keys, self.noise_free_errors(val_frame, pred)], axis=1)
                 .groupby(list(GROUPS)).mean()
                 for name, pred in (("mlp", mlp_pred), ("backup", mamba_pred))}
        mlp_keeps = (means["mlp"] <= means["backup"]).all(axis=1)
        better = [[float(k) for k in key] for key, keeps in mlp_keeps.items() if not keeps]
        self._set_thresholds({"divergence": float(np.quantile(div.to_numpy(), quantile)),
                              "backup_more_accurate": better,
                              "validation_error": {
                                  f"{int(k[0])},{int(k[1])}": {
                                      name: means[name].loc[k].to_dict() for name in means}
                                  for k in means["mlp"].index},
                              "quantile": float(quantile), "n_val_rows": int(len(features)),
                              "fitted_on": "val split"})
        return self.thresholds

    def noise_free_errors(self, frame: pd.DataFrame, pred: pd.DataFrame) -> pd.DataFrame:
        """Per row and target: the error against the noise-free truth (received power and SINR
        against their medians, qos against qos(median SINR), radius and area as they are), on
        the scale of ``differences``: what validation compares between the backbones."""
        truth = oracle_predictions(frame, self.physics_assumptions["implementation_gap_db"])
        return self.differences(pred, truth).reset_index(drop=True)

    def save_thresholds(self, path) -> Path:
        """The thresholds, with the checksums of the checkpoints they were fitted for (JSON,
        written atomically)."""
        if self.thresholds is None:
            raise ValueError("no thresholds to save: call fit_thresholds(val_frame) first")
        return write_json(path, {"format": THRESHOLDS_FORMAT, **self.thresholds,
                                 **self.fingerprint})

    def load_thresholds(self, path) -> dict:
        """Reuse saved thresholds; a file fitted for other checkpoints → ValueError."""
        payload = read_json(path, THRESHOLDS_FORMAT, "a Selector thresholds file",
                            "fit the thresholds on validation (notebook 04_evaluate) first")
        del payload["format"]
        for key, value in self.fingerprint.items():
            if key in payload and payload[key] != value:
                raise ValueError(f"{path} was fitted for {key} {payload[key]}, not for the "
                                 f"checkpoints loaded here ({value}); refit on validation")
        self._set_thresholds({k: v for k, v in payload.items() if k not in self.fingerprint
                              and not k.endswith("_sha256")})
        return self.thresholds

    @staticmethod
    def routing_summary(predictions: pd.DataFrame) -> pd.DataFrame:
        """Rows and fraction per route and reason (see the module's ``routing_summary``)."""
        return routing_summary(predictions)


def routing_summary(predictions: pd.DataFrame) -> pd.DataFrame:
    """Rows and fraction per route and reason (every reason listed, zeros included)."""
    if "routed_to" not in predictions or "reason" not in predictions:
        raise ValueError("predictions must be the Selector's output, with 'routed_to' and "
                         "'reason' columns")
    primary, backup = routes()
    keys = [(primary, "")] + [(backup, reason) for reason in REASONS]
    counts = predictions.groupby(["routed_to", "reason"]).size()
    rows = [counts.get(key, 0) for key in keys]
    n = max(len(predictions), 1)
    return pd.DataFrame({"rows": rows, "fraction": [r / n for r in rows]},
                        index=pd.MultiIndex.from_tuples(keys, names=["routed_to", "reason"]))
