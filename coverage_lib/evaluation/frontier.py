"""What the cascade costs and buys: its operating points from "primary only" to "backup only"
(``frontier``), how close its gate comes to perfect routing (``risk_coverage``), what each gate
costs and catches (``gate_costs``), and the batch-1 latency of a link each backbone answers
(``link_latency``). Every figure is measured in the evaluation run that writes it.

A point's errors are the cascade's own: per row the primary's or the backup's answer, as
``predict`` would route it (a test checks that the two agree); its rows/s are ``predict_array``
timed at batch 4096 on the split's first rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.schema import FEATURES, TARGETS
from ..models import registry
from ..physics.rules import MOVED, excess_array, rule_excess_array
from . import latency
from .selector import Selector, noise_free_truth

FRONTIER_TOLERANCES = (1.0, 0.3, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.0)
FRONTIER_TARGETS = ("received_power_dbm", "coverage_radius_m")  # power against the median
MONOTONIC_RULES = ("power_vs_distance", "power_vs_rain", "radius_vs_distance")
TIMING_ROWS = 4096
SHARES = np.linspace(0.0, 1.0, 21)


def _rows_per_s(fn, x: np.ndarray, repeats: int) -> float:
    return len(x) / latency.median_seconds(fn, x, repeats=repeats, warmup=1)


class _Split:
    """One split through one pair: both backbones' errors per row, the forced routes and the
    gate's score (``Selector.route``)."""

    def __init__(self, selector: Selector, frame: pd.DataFrame, gap: float):
        primary, backup, flags = selector.route(frame[FEATURES])
        truth = noise_free_truth(frame, gap)
        columns = [TARGETS.index(t) for t in FRONTIER_TARGETS]
        self.err_primary = np.abs(primary[TARGETS].to_numpy(float) - truth)[:, columns]
        self.err_backup = np.abs(backup[TARGETS].to_numpy(float) - truth)[:, columns]
        self.forced = ((flags["out_of_domain"] != "") | flags["physics_rule"]).to_numpy()
        self.score = flags["confidence_score"].to_numpy(float)
        self.x = frame[FEATURES].to_numpy(float)[:TIMING_ROWS]

    def point(self, routed: np.ndarray, rows_per_s: float) -> dict:
        errors = np.where(routed[:, None], self.err_backup, self.err_primary).mean(axis=0)
        return {"to_backup": float(routed.mean()), "rows_per_s": float(rows_per_s),
                **dict(zip(FRONTIER_TARGETS, map(float, errors)))}


def frontier(selector: Selector, backbones: dict, val: pd.DataFrame, frames: dict, gap: float,
             primaries=("mlp", "mlp_law"), repeats: int = 3) -> dict:
    """metrics.json's ``frontier``: for the fitted default ``selector`` and the same backup
    behind each other registered primary of ``primaries`` (its gate fitted on the same
    validation rows ``val``, ``Selector.with_primary``), the operating points from the primary alone
    through ``FRONTIER_TOLERANCES`` to the backup alone, each on every split of ``frames``."""
    out = {"default_tolerance": selector.tolerance, "splits": list(frames), "pairs": {}}
    names = registry.display_names()
    for key in primaries:
        fitted = selector if key == selector.keys[0] else None
        if fitted is None:
            fitted = selector.with_primary(backbones[key], key)
            fitted.fit_thresholds(val, selector.tolerance)
        splits = {s: _Split(fitted, f, gap) for s, f in frames.items()}
        points = [{"label": f"{names[key]} only", "kind": "primary_only", "tolerance": None,
                   "default": False, "validation_to_backup": None,
                   "splits": {s: d.point(np.zeros(len(d.score), bool),
                                         _rows_per_s(fitted.primary.predict_array, d.x, repeats))
                              for s, d in splits.items()}}]
        for tolerance in FRONTIER_TOLERANCES:
            at = fitted.at_tolerance(tolerance)
            points.append({
                "label": f"tolerance {tolerance:g}", "kind": "cascade", "tolerance": tolerance,
                "default": key == selector.keys[0] and tolerance == selector.tolerance,
                "validation_to_backup": at.thresholds["validation_to_backup"],
                "splits": {s: d.point(d.forced | at.low_confidence(d.score),
                                      _rows_per_s(lambda x: at.predict_array(x), d.x, repeats))
                           for s, d in splits.items()}})
        points.append({"label": f"{names[selector.keys[1]]} only", "kind": "backup_only",
                       "tolerance": None, "default": False, "validation_to_backup": None,
                       "splits": {s: d.point(np.ones(len(d.score), bool),
                                             _rows_per_s(fitted.backup.predict_array, d.x,
                                                         repeats))
                                  for s, d in splits.items()}})
        out["pairs"][key] = {"primary": key, "backup": selector.keys[1], "points": points}
    return out


def risk_coverage(selector: Selector, frame: pd.DataFrame, gap: float,
                  split: str = "test") -> dict:
    """metrics.json's ``risk_coverage``: the mean noise-free error on ``frame`` when each share
    of ``SHARES`` of its rows goes to the backup, chosen by the gate (forced routes first, then
    by score) or by an oracle that knows each row's error on that target."""
    d = _Split(selector, frame, gap)
    gate_order = np.lexsort((-d.score, ~d.forced))  # forced first, then the highest scores
    out = {"pair": selector.keys[0], "split": split, "to_backup": SHARES.tolist(),
           "gate": {}, "oracle": {}}
    for j, target in enumerate(FRONTIER_TARGETS):
        gain = d.err_primary[:, j] - d.err_backup[:, j]
        for name, order in (("gate", gate_order), ("oracle", np.argsort(-gain, kind="stable"))):
            cumulative = np.concatenate([[0.0], np.cumsum(gain[order])])
            k = np.round(SHARES * len(gain)).astype(int)
            out[name][target] = ((d.err_primary[:, j].sum() - cumulative[k])
                                 / len(gain)).tolist()
    return out


def gate_costs(selector: Selector, test: pd.DataFrame, repeats: int = 5) -> list[dict]:
    """metrics.json's ``gates``: each gate's cost (µs per row at batch ``TIMING_ROWS``) and
    the share of test rows it alone sends to the backup; the primary's and the backup's own
    cost per row beside them."""
    x_all = test[FEATURES].to_numpy(float)
    x = x_all[:TIMING_ROWS]
    gap = selector.physics_assumptions["implementation_gap_db"]
    us = lambda fn: 1e6 * latency.median_seconds(fn, x, repeats, 1) / len(x)  # noqa: E731
    answers = np.asarray(selector.primary.predict_array(x_all), dtype=float)
    primary_us = us(selector.primary.predict_array)
    answer_rules = [r for r in selector.rules if r not in MOVED]
    monotonic = selector.with_primary(selector.primary, selector.keys[0])
    monotonic.rules = MONOTONIC_RULES
    _, excess = rule_excess_array(selector.primary.predict_array, x_all, MONOTONIC_RULES, gap)
    y = answers[:TIMING_ROWS]
    rows = [
        ("primary pass", "the primary's predict_array (every in-domain row)", primary_us, None),
        ("out_of_domain", "a feature outside the training domain",
         us(lambda v: selector.outside(v).any(axis=1)),
         selector.outside(x_all).any(axis=1).mean()),
        ("physics_rule: " + ", ".join(answer_rules), "identities and ranges, read off the answer",
         us(lambda v: selector.rules_broken(excess_array(v, y, {}, answer_rules, gap), len(v))),
         selector.rules_broken(selector.primary_with_rules(x_all)[1], len(x_all))[1].mean()),
        ("physics_rule: " + ", ".join(MONOTONIC_RULES),
         "monotonicity by finite differences: two moved copies per row through the primary",
         us(lambda v: rule_excess_array(selector.primary.predict_array, v, MONOTONIC_RULES, gap))
         - primary_us,
         monotonic.rules_broken(excess, len(x_all))[1].mean()),
        ("low_confidence", "the confidence gate's trees on the link and the answer",
         us(lambda v: selector.confidence_score(v, y)),
         selector.low_confidence(selector.confidence_score(x_all, answers)).mean()),
        ("backup pass", "the backup's predict_array (routed rows only)",
         us(selector.backup.predict_array), None)]
    return [{"gate": g, "what": w, "us_per_row": float(c),
             "test_share": None if s is None else float(s)} for g, w, c, s in rows]


def link_latency(selector: Selector, test: pd.DataFrame, repeats: int) -> list[dict]:
    """Batch-1 latency rows of ``predict_array`` on the first test link the primary answers
    and the first one the backup answers (``latency.measure``'s row format)."""
    x = test[FEATURES].to_numpy(float)[:TIMING_ROWS]
    _, code = selector.predict_array(x)
    names = registry.display_names()
    variants = {}
    for routed, who in ((False, names[selector.keys[0]]), (True, names[selector.keys[1]])):
        found = np.flatnonzero((code > 0) == routed)
        if found.size:
            link = x[found[:1]]
            variants[("Selector", f"predict_array, a link the {who} answers")] = (
                selector.predict_array, lambda _rows, link=link: link)
    return latency.measure(variants, test.iloc[:1], batches=(1,),
                           repeats={1: repeats}).to_dict(orient="records")
