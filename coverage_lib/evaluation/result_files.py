"""The files an evaluation writes: ``metrics.json`` (its schema, ``write_metrics``,
``read_metrics``, ``read_results``), a replicate's ``replicate.json`` (``read_replicate``), and
what they are keyed by (``model_keys``, ``EVAL_SPLITS``, ``FREQUENCY_BANDS_GHZ``); every file is
read and written by ``core.io.read_json`` and ``core.io.write_json``.

``metrics.json`` (``data/<profile>/results/metrics.json``) is the one file the book reads its
numbers from. Schema (format ``d2tl-coverage-metrics/2``; 2: routing keyed by role), every float in physical units:

- ``profile``, ``data_manifest_sha256``, ``checkpoints`` ({model: sha256}), ``machine``
  (``machine.machine()``), ``parameters`` (the notebook's parameters);
- ``splits``: {split: {"rows", "physics_rows"}} for "test" and each OOD set;
- ``accuracy``: {split: {model: {target: {"mae", "rmse", "r2", ["mae_vs_median"]}}}} for the
  models of ``model_keys()`` (``mae_vs_median``: received power and SINR against the noise-free
  median, qos against qos(median SINR): the error a model can still reduce; radius and area
  are noise-free, so their ``mae`` is already that error: ``noise_free_mae``);
- ``frequency_bands``: {split: {band: {"rows", model: {target: noise-free MAE}}}} on the sets
  reaching past the training frequencies, per band of ``FREQUENCY_BANDS_GHZ`` (the trained
  band "≤ 40 GHz" has rows in ``ood_multiple`` only: rain and distance both out of range);
- ``training``: {backbone: {"parameters", "epochs", "best_epoch", "training_time_s",
  "still_improving", "stopped", "converged"}} from each checkpoint and training history
  (``stopped``: "patience" or "ceiling", ``converged``: stopped by the patience);
- ``raw_heads``: the same for the MLP's and the Mamba-3's five raw heads on the test split
  (``predict(outputs="raw")``), beside the physics-consistent outputs they serve;
- ``physics``: {split: {model: {rule: {"violation_rate", "mean_violation", "max_violation",
  "tolerance"}}}} on the first ``physics_rows`` rows (``physics.rules.check``; the noise-free
  link budget appears as "physics"), and on as many points of the whole domain ("domain");
- ``routing``: {split: {"rows", "to_primary", "to_backup", "backup_rows", "reasons": {reason:
  fraction}}}: the cascade's routing (``to_primary``: the primary's share, ``to_backup``: the
  backup's, ``backup_rows``: the rows the backup ran on);
- ``selector``: the pair, its tolerance, the confidence gate's score threshold and the
  tolerance scales (fitted on validation; the gate itself is in ``selector_thresholds.json``),
  routing rules and tolerances;
- ``frontier``: ``frontier.frontier`` (per pair, operating points from the primary alone to
  the backup alone: share sent to the backup, noise-free power and radius error and rows/s at
  batch 4096 on every split; the default marked), ``risk_coverage``
  (``frontier.risk_coverage``: the gate against an oracle routing on the test split) and
  ``gates`` (``frontier.gate_costs``: each gate's cost per row and share of test rows);
- ``lightgbm``: chosen parameters per target (with ``cap_reached`` and the seconds of its
  search and refit), every candidate of the search, search rows, the space and the number of
  candidates, the search's total cost (``search_s``, ``refit_s``);
- ``latency``: rows of ``latency.measure`` (model, variant, batch, median_ms, us_per_row,
  rows_per_s, repeats);
- ``serving``: ``runner.serving_summary`` (GEMM peaks, the MLP's roofline fractions, its bf16 cost,
  the ONNX files, the serving goals);
- ``goals``: rows of ``paper_goals.goals(...)`` (goal, value, limit, met).

Non-finite numbers (an oracle's MAE ratio on an exact target) are written as null.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..core import paths
from ..core.io import read_json, write_json
from ..core.schema import OOD_SPLITS
from ..datasets import dataset
from ..models import registry

FORMAT = "d2tl-coverage-metrics/2"  # 2: routing by role (to_primary, to_backup)
REPLICATE_FORMAT = "d2tl-coverage-replicate/3"  # 3: routing by role
# The sets every model is scored on, in the order the tables show them.
EVAL_SPLITS = ("test", *OOD_SPLITS)
# Frequency bands of the sets past the training frequencies (up to 40 GHz): the trained band
# (ood_multiple's rows there lie past the training rain rates and distances only), then below
# the oxygen absorption complex, across it (about 50–70 GHz, peak near 60 GHz), above it.
FREQUENCY_BANDS_GHZ = ((0.0, 40.0), (40.0, 55.0), (55.0, 65.0), (65.0, 100.0))
BAND_SPLITS = ("ood_frequency", "ood_multiple")
# The statistics ``accuracy`` holds per model and target.
STATS = ("mae", "rmse", "r2", "mae_vs_median")


def band_label(low: float, high: float) -> str:
    """A band of ``FREQUENCY_BANDS_GHZ`` as metrics.json keys it ("≤ 40 GHz", "40–55 GHz")."""
    return f"≤ {high:g} GHz" if low <= 0 else f"{low:g}–{high:g} GHz"


def model_keys() -> tuple:
    """Keys of every model scored, in the order tables show them: the oracle, LightGBM, each
    registered backbone, the Selector."""
    return ("oracle", "lightgbm", *registry.BACKBONES, "selector")


def model_names() -> dict:
    """{key: display name} of every model, and of the physics (link budget)."""
    return registry.display_names()


def named(by_key: dict, skip=()) -> dict:
    """The same mapping keyed by display names (the figures' legends), without ``skip``."""
    names = model_names()
    return {names.get(k, k): v for k, v in by_key.items() if k not in skip}


def read_results(data_dir) -> dict:
    """``results/metrics.json`` of ``data_dir``, refused if it was computed on another data
    set than the one there now."""
    path = paths.resolve(data_dir) / "results" / "metrics.json"
    results = read_metrics(path)
    if results["data_manifest_sha256"] != dataset.identity(paths.dataset_dir(data_dir)):
        raise ValueError(f"{path} was computed on another data set; rerun the evaluation "
                         f"notebook (04_evaluate)")
    return results


def write_metrics(path, results: dict) -> Path:
    """Write ``results`` (the module's schema, without ``format``) atomically as JSON."""
    missing = [k for k in ("profile", "accuracy", "goals") if k not in results]
    if missing:
        raise ValueError(f"results lacks {missing[0]!r}; see the schema of "
                         f"coverage_lib.evaluation.result_files")
    return write_json(path, {"format": FORMAT, **results})


def read_metrics(path) -> dict:
    """Read a ``metrics.json``; anything else → ValueError naming the file."""
    return read_json(path, FORMAT, "a D2TL Coverage metrics file",
                     "run the pipeline (notebook 04_evaluate) first")


def read_replicate(path) -> dict:
    """Read a replicate's ``results/replicate.json``; anything else → ValueError naming it."""
    return read_json(path, REPLICATE_FORMAT, "a replicate's result",
                     "the replicate's chain has not finished: run the pipeline")


def load_histories(data_dir) -> dict:
    """{backbone key: its training history} of every registered backbone."""
    return {k: json.loads(b.history_path(data_dir).read_text())
            for k, b in registry.BACKBONES.items()}


def converged(training_entry: dict) -> bool:
    """Whether a backbone's entry of ``metrics.json["training"]`` says it converged: stopped by
    the patience (the trainer's rule), not at the epoch ceiling. Results written before the
    rule existed say only ``still_improving``; for them, not improving at the end counts."""
    if "converged" in training_entry:
        return bool(training_entry["converged"])
    return not training_entry["still_improving"]
