"""Every model on every evaluation split, the paper's goals, and ``metrics.json``.

``metrics.json`` (``data/<profile>/results/metrics.json``) is the one file the book reads its
numbers from. Schema (format ``d2tl-coverage-metrics/1``), every float in physical units:

- ``profile``, ``data_manifest_sha256``, ``checkpoints`` ({model: sha256}), ``machine``
  (``latency.machine()``), ``parameters`` (the notebook's parameters);
- ``splits``: {split: {"rows", "physics_rows"}} for "test" and each OOD set;
- ``accuracy``: {split: {model: {target: {"mae", "rmse", "r2", ["mae_vs_median"]}}}} for the
  models of ``MODELS`` (``mae_vs_median``: received power and SINR against the noise-free
  median, the error a model can still reduce);
- ``raw_heads``: the same for the MLP's and the Mamba-3's five raw heads on the test split
  (``predict(outputs="raw")``), beside the physics-consistent outputs they serve;
- ``physics``: {split: {model: {rule: {"violation_rate", "mean_violation", "max_violation",
  "tolerance"}}}} on the first ``physics_rows`` rows (``physics_checks.check``; the noise-free
  link budget appears as "physics");
- ``routing``: {split: {"rows", "to_mlp", "to_mamba", "reasons": {reason: fraction}}};
- ``selector``: thresholds (fitted on validation), routing rules and tolerances;
- ``lightgbm``: chosen parameters per target, every candidate of the search, search rows;
- ``latency``: rows of ``latency.measure`` (model, variant, batch, median_ms, us_per_row,
  rows_per_s, repeats);
- ``goals``: rows of ``goals(...)`` (goal, value, limit, met).

Non-finite numbers (an oracle's MAE ratio on an exact target) are written as null.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import params
from .dataset import OOD_SPLITS, TARGETS
from .io import atomic_write_text

FORMAT = "d2tl-coverage-metrics/1"
MODELS = ("oracle", "lightgbm", "mlp", "mamba3", "selector")
MODEL_NAMES = {"oracle": "oracle (noise floor)", "physics": "physics (link budget)",
               "lightgbm": "LightGBM", "mlp": "CoverageMLP", "mamba3": "CoverageMamba3",
               "selector": "Selector"}
EVAL_SPLITS = ("test", *OOD_SPLITS)
STATS = ("mae", "rmse", "r2", "mae_vs_median")
# Decimals the goals table shows (notebooks 04 and 05); ``goals`` judges the value so rounded,
# so that a reader checking ``value`` against ``limit`` in the table reaches the same verdict.
GOAL_DECIMALS = 4


def table(accuracy: dict, split: str, stat: str = "mae", models=None) -> pd.DataFrame:
    """One statistic on one split: a row per target, a column per model (display names)."""
    params.one_of(*STATS)("stat", stat)
    params.one_of(*accuracy)("split", split)
    models = [m for m in (models or MODELS) if m in accuracy[split]]
    return pd.DataFrame({MODEL_NAMES.get(m, m): [accuracy[split][m][t].get(stat, np.nan)
                                                 for t in TARGETS] for m in models},
                        index=pd.Index(TARGETS, name=stat))


def violation_table(physics: dict, split: str) -> pd.DataFrame:
    """Violation rates (%) on one split: a row per rule, a column per model."""
    return pd.DataFrame({MODEL_NAMES.get(m, m): {rule: 100.0 * r["violation_rate"]
                                                 for rule, r in rules.items()}
                         for m, rules in physics[split].items()})


def routing_entry(flags: pd.DataFrame) -> dict:
    """The Selector's routing on a split as JSON: fractions to each backbone and per reason
    (``selector.routing_summary`` of ``route``'s flags)."""
    from .selector import REASONS, routing_summary
    summary = routing_summary(flags)
    n = max(len(flags), 1)
    return {"rows": int(len(flags)), "to_mlp": float(summary.loc[("mlp", ""), "fraction"]),
            "to_mamba": float(summary.loc["mamba", "rows"].sum() / n),
            "reasons": {r: float(summary.loc[("mamba", r), "fraction"]) for r in REASONS}}


def _mae(accuracy, split, model, target):
    return accuracy[split][model][target]["mae"]


def goals(accuracy: dict) -> list[dict]:
    """The paper's goals (issue "Evaluation and the Selector"), each with its measured value.

    ``value`` is stored unrounded; ``met`` is judged on it rounded as the goals table shows it
    (``GOAL_DECIMALS``). A goal whose models or splits are absent is left out.
    """
    rows = []

    def add(goal, value, limit, kind):
        shown = round(float(value), GOAL_DECIMALS)
        ok = shown <= limit if kind == "max" else shown >= limit
        rows.append({"goal": goal, "value": float(value), "limit": float(limit),
                     "kind": kind, "met": bool(ok)})

    test = accuracy.get("test", {})
    if {"mlp", "oracle"} <= set(test):
        for target, label in (("received_power_dbm", "received power"), ("sinr_db", "SINR")):
            add(f"MLP {label} test MAE / oracle MAE",
                _mae(accuracy, "test", "mlp", target) / _mae(accuracy, "test", "oracle", target),
                1.01, "max")
            add(f"MLP {label} test MAE vs the median (dB)",
                test["mlp"][target]["mae_vs_median"], 0.3, "max")
        add("MLP radius test R²", test["mlp"]["coverage_radius_m"]["r2"], 0.999, "min")
    if {"mlp", "lightgbm"} <= set(test):
        for target in TARGETS:
            add(f"MLP test MAE / LightGBM test MAE: {target}",
                _mae(accuracy, "test", "mlp", target) / _mae(accuracy, "test", "lightgbm", target),
                1.0, "max")
    for split in ("ood_frequency", "ood_rain"):
        if {"mlp", "mamba3"} <= set(accuracy.get(split, {})):
            ratio = np.mean([_mae(accuracy, split, "mamba3", t) / _mae(accuracy, split, "mlp", t)
                             for t in TARGETS])
            add(f"Mamba-3 / MLP MAE on {split} (mean over targets)", ratio, 0.8, "max")
    for split in accuracy:
        if {"mlp", "mamba3", "selector"} <= set(accuracy[split]):
            worst = max(_mae(accuracy, split, "selector", t)
                        / min(_mae(accuracy, split, "mlp", t), _mae(accuracy, split, "mamba3", t))
                        for t in TARGETS)
            add(f"Selector / better single model MAE on {split} (worst target)", worst, 1.02,
                "max")
    return rows


def _finite(value):
    """JSON-safe: NaN and ±inf → None, numpy scalars → Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_metrics(path, results: dict) -> Path:
    """Write ``results`` (the schema above, without ``format``) atomically as JSON."""
    missing = [k for k in ("profile", "accuracy", "goals") if k not in results]
    if missing:
        raise ValueError(f"results lacks {missing[0]!r}; see coverage_lib.evaluation's schema")
    payload = {"format": FORMAT, **_finite(results)}
    return atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True,
                                              allow_nan=False) + "\n")


def read_metrics(path) -> dict:
    """Read a ``metrics.json``; anything else → ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run the pipeline (notebook 04_evaluate) first")
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a D2TL Coverage metrics file (format {FORMAT!r})")
    return payload
