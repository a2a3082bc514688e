"""Every model on every evaluation split, the paper's goals, and ``metrics.json``.

``metrics.json`` (``data/<profile>/results/metrics.json``) is the one file the book reads its
numbers from. Schema (format ``d2tl-coverage-metrics/1``), every float in physical units:

- ``profile``, ``data_manifest_sha256``, ``checkpoints`` ({model: sha256}), ``machine``
  (``latency.machine()``), ``parameters`` (the notebook's parameters);
- ``splits``: {split: {"rows", "physics_rows"}} for "test" and each OOD set;
- ``accuracy``: {split: {model: {target: {"mae", "rmse", "r2", ["mae_vs_median"]}}}} for the
  models of ``MODELS`` (``mae_vs_median``: received power and SINR against the noise-free
  median, qos against qos(median SINR): the error a model can still reduce; radius and area
  are noise-free, so their ``mae`` is already that error: ``noise_free_mae``);
- ``frequency_bands``: {split: {band: {"rows", model: {target: noise-free MAE}}}} on the sets
  reaching past the training frequencies, per band of ``FREQUENCY_BANDS_GHZ`` (the trained
  band "≤ 40 GHz" has rows in ``ood_multiple`` only: rain and distance both out of range);
- ``training``: {backbone: {"parameters", "epochs", "best_epoch", "training_time_s",
  "still_improving"}} from each checkpoint and training history;
- ``raw_heads``: the same for the MLP's and the Mamba-3's five raw heads on the test split
  (``predict(outputs="raw")``), beside the physics-consistent outputs they serve;
- ``physics``: {split: {model: {rule: {"violation_rate", "mean_violation", "max_violation",
  "tolerance"}}}} on the first ``physics_rows`` rows (``physics_checks.check``; the noise-free
  link budget appears as "physics"), and on as many points of the whole domain ("domain");
- ``routing``: {split: {"rows", "to_mlp", "to_mamba", "reasons": {reason: fraction}}};
- ``selector``: thresholds (fitted on validation), routing rules and tolerances;
- ``lightgbm``: chosen parameters per target (with ``cap_reached`` and the seconds of its
  search and refit), every candidate of the search, search rows, the space and the number of
  candidates, the search's total cost (``search_s``, ``refit_s``);
- ``latency``: rows of ``latency.measure`` (model, variant, batch, median_ms, us_per_row,
  rows_per_s, repeats);
- ``serving``: ``serving_summary`` (GEMM peaks, the MLP's roofline fractions, its bf16 cost,
  the ONNX files, the serving goals);
- ``goals``: rows of ``goals(...)`` (goal, value, limit, met).

Non-finite numbers (an oracle's MAE ratio on an exact target) are written as null.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..models import baselines, registry
from ..datasets import dataset
from ..core import io, machine, metrics, paths, schema, validation
from ..physics import oracle, rules, sampling
from . import latency, serving
from ..report import tables
from ..training import trainer
from ..models.baselines import LightGBMBaseline, random_candidates
from ..core.schema import FEATURES, OOD_SPLITS, TARGETS
from ..core.io import atomic_write_text
from .selector import Selector

# The evaluation stage's parameters (notebooks/04_evaluate.ipynb), each with its rule.
PARAMETERS = {
    "seed": validation.non_negative_int,
    "lightgbm_space": baselines.lightgbm_space,
    "lightgbm_candidates": validation.positive_int,
    "lightgbm_search_rows": validation.positive_int,
    "lightgbm_max_rounds": validation.positive_int,
    "lightgbm_early_stopping": validation.positive_int,
    "lightgbm_min_improvement": validation.unit_interval,
    "selector_quantile": validation.quantile,
    "physics_rows": validation.positive_int,
    "latency_repeats": validation.positive_int,
    "onnx_backbones": validation.list_of(registry.backbone_key),
}
# A replicate chain's evaluation (notebooks/replicate.ipynb): not a stage of a profile; the
# pipeline derives its parameters from the seeds and evaluation stages'.
REPLICATE_PARAMETERS = {
    "seed": validation.non_negative_int,
    "lightgbm_params": baselines.lightgbm_chosen,
    "lightgbm_max_rounds": validation.positive_int,
    "lightgbm_early_stopping": validation.positive_int,
    "lightgbm_min_improvement": validation.unit_interval,
    "selector_quantile": validation.quantile,
    "physics_rows": validation.non_negative_int,  # 0: no rule checks (a learning-curve replicate)
}
FORMAT = "d2tl-coverage-metrics/1"


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
    if results["data_manifest_sha256"] != dataset.manifest_sha256(paths.dataset_dir(data_dir)):
        raise ValueError(f"{path} was computed on another data set; rerun the evaluation "
                         f"notebook (04_evaluate)")
    return results


EVAL_SPLITS = ("test", *OOD_SPLITS)
# Frequency bands of the sets past the training frequencies (up to 40 GHz): the trained band
# (ood_multiple's rows there lie past the training rain rates and distances only), then below
# the oxygen absorption complex, across it (about 50–70 GHz, peak near 60 GHz), above it.
FREQUENCY_BANDS_GHZ = ((0.0, 40.0), (40.0, 55.0), (55.0, 65.0), (65.0, 100.0))
BAND_SPLITS = ("ood_frequency", "ood_multiple")
STATS = ("mae", "rmse", "r2", "mae_vs_median")
# Decimals the goals table shows (notebooks 04 and 05); ``goals`` judges the value so rounded,
# so that a reader checking ``value`` against ``limit`` in the table reaches the same verdict.
GOAL_DECIMALS = 4


def table(accuracy: dict, split: str, stat: str = "mae", models=None) -> pd.DataFrame:
    """One statistic on one split: a row per target, a column per model (display names)."""
    validation.one_of(*STATS)("stat", stat)
    validation.one_of(*accuracy)("split", split)
    names = model_names()
    chosen = [m for m in (models or model_keys()) if m in accuracy[split]]
    return pd.DataFrame({names.get(m, m): [accuracy[split][m][t].get(stat, np.nan)
                                           for t in TARGETS] for m in chosen},
                        index=pd.Index(TARGETS, name=stat))


def violation_table(physics: dict, split: str) -> pd.DataFrame:
    """Violation rates (%) on one split: a row per rule, a column per model."""
    names, found = model_names(), physics[split]
    return pd.DataFrame({names.get(m, m): {rule: None if r["violation_rate"] is None else
                                           100.0 * r["violation_rate"]
                                           for rule, r in found[m].items()}
                         for m in ("physics", *model_keys()) if m in found})


def routing_entry(flags: pd.DataFrame) -> dict:
    """The Selector's routing on a split as JSON: fractions to each backbone and per reason
    (``selector.routing_summary`` of ``route``'s flags)."""
    from .selector import REASONS, routes, routing_summary
    summary = routing_summary(flags)
    n = max(len(flags), 1)
    primary, backup = routes()
    return {"rows": int(len(flags)), "to_mlp": float(summary.loc[(primary, ""), "fraction"]),
            "to_mamba": float(summary.loc[backup, "rows"].sum() / n),
            "reasons": {r: float(summary.loc[(backup, r), "fraction"]) for r in REASONS}}


def _mae(accuracy, split, model, target):
    return accuracy[split][model][target]["mae"]


def noise_free_mae(entry: dict, target: str) -> float:
    """A model's error against the noise-free truth on one target: ``mae_vs_median`` where the
    target is noisy (received power, SINR, qos), the MAE where it is not (radius, area)."""
    return entry[target].get("mae_vs_median", entry[target]["mae"])


def noise_free_metrics(frame: pd.DataFrame, pred: pd.DataFrame, gap: float) -> dict:
    """``metrics.target_metrics`` plus qos against qos(median SINR) as ``mae_vs_median``."""
    out = metrics.target_metrics(frame, pred)
    if "sinr_median_db" in frame:
        truth = oracle.oracle_predictions(frame, gap)["qos_score"].to_numpy()
        out["qos_score"]["mae_vs_median"] = float(np.mean(np.abs(
            pred["qos_score"].to_numpy(dtype=float) - truth)))
    return out


def band_label(low: float, high: float) -> str:
    return f"≤ {high:g} GHz" if low <= 0 else f"{low:g}–{high:g} GHz"


def frequency_bands(frame: pd.DataFrame, answers: dict, gap: float) -> dict:
    """{band: {"rows", model: {target: noise-free MAE}}} of ``answers`` ({model: predictions}
    on ``frame``) per band of ``FREQUENCY_BANDS_GHZ`` (bands without rows left out)."""
    out = {}
    f = frame["frequency_ghz"].to_numpy()
    for low, high in FREQUENCY_BANDS_GHZ:
        rows = (f > low) & (f <= high)
        if rows.any():
            out[band_label(low, high)] = {"rows": int(rows.sum()), **{
                m: {t: noise_free_mae(noise_free_metrics(frame[rows], p[rows], gap), t)
                    for t in TARGETS} for m, p in answers.items() if m != "oracle"}}
    return out


def training_summary(models: dict, histories: dict) -> dict:
    """{backbone: parameters, epochs run, best epoch, training time, still improving} from the
    loaded models ({key: model}) and their training histories."""
    return {k: {"parameters": int(models[k].n_parameters), "epochs": len(h["val_mae"]),
                "best_epoch": int(h["best_epoch"]),
                "training_time_s": float(sum(h["epoch_time_s"])),
                "still_improving": bool(h["best_epoch"] == len(h["val_mae"]))}
            for k, h in histories.items() if k in models}


def goal_row(goal: str, value, limit, kind: str) -> dict:
    """One goal: its value (unrounded), limit, kind ("max" or "min") and ``met``, judged on the
    value rounded as the goals tables show it (``GOAL_DECIMALS``)."""
    shown = round(float(value), GOAL_DECIMALS)
    ok = shown <= limit if kind == "max" else shown >= limit
    return {"goal": goal, "value": float(value), "limit": float(limit), "kind": kind,
            "met": bool(ok)}


def timing(rows: list, model: str, variant: str, batch: int, column: str, *default):
    """``column`` of the latency row of (model, variant, batch); ``default`` if given and no
    such row was timed, else StopIteration."""
    return next((r[column] for r in rows if r["model"] == model and r["variant"] == variant
                 and r["batch"] == batch), *default)


def goals(accuracy: dict, physics: dict | None = None) -> list[dict]:
    """The paper's goals (issue "Evaluation and the Selector"), each with its measured value.

    ``value`` is stored unrounded; ``met`` is judged on it rounded as the goals table shows it
    (``GOAL_DECIMALS``). A goal whose models or splits are absent is left out.
    """
    rows = []
    mlp, mamba3 = registry.by_role("primary").key, registry.by_role("backup").key

    def add(goal, value, limit, kind):
        rows.append(goal_row(goal, value, limit, kind))

    test = accuracy.get("test", {})
    if {mlp, "oracle"} <= set(test):
        for target, label in (("received_power_dbm", "received power"), ("sinr_db", "SINR")):
            add(f"MLP {label} test MAE / oracle MAE",
                _mae(accuracy, "test", mlp, target) / _mae(accuracy, "test", "oracle", target),
                1.01, "max")
            add(f"MLP {label} test MAE vs the median (dB)",
                test[mlp][target]["mae_vs_median"], 0.3, "max")
        add("MLP radius test R²", test[mlp]["coverage_radius_m"]["r2"], 0.999, "min")
    if {mlp, "lightgbm"} <= set(test):
        for target in TARGETS:
            add(f"MLP test MAE / LightGBM test MAE: {target}",
                _mae(accuracy, "test", mlp, target) / _mae(accuracy, "test", "lightgbm", target),
                1.0, "max")
    # The backup against the noise-free truth (issue "The physics backup earns its place").
    power_limits = {"test": (0.35, None), "ood_distance": (0.5, None), "ood_rain": (0.3, None),
                    "ood_multiple": (None, 0.5), "ood_frequency": (None, 1.0)}
    radius_limits = {"test": (None, 1.5), "ood_distance": (100.0, None),
                     "ood_rain": (25.0, None), "ood_multiple": (None, 0.5),
                     "ood_frequency": (None, 1.0)}
    for target, label, limits, unit in (
            ("received_power_dbm", "received power vs median", power_limits, "dB"),
            ("coverage_radius_m", "radius MAE", radius_limits, "m")):
        for split, (absolute, relative) in limits.items():
            if {mlp, mamba3} <= set(accuracy.get(split, {})):
                backup = noise_free_mae(accuracy[split][mamba3], target)
                if absolute is not None:
                    add(f"backup {label} on {split} ({unit})", backup, absolute, "max")
                else:
                    add(f"backup / MLP {label} on {split}",
                        backup / noise_free_mae(accuracy[split][mlp], target), relative, "max")
    if physics is not None:
        worst = max(100.0 * physics[s][mamba3][rule]["violation_rate"]
                    for s in ("test", "domain") if s in physics and mamba3 in physics[s]
                    for rule in ("power_vs_distance", "power_vs_rain", "radius_vs_distance"))
        add("backup rows breaking power–distance, power–rain or radius–distance, test and "
            "whole domain (%)", worst, 0.0, "max")
    below_both = 0
    for split in accuracy:
        if {mlp, mamba3, "selector"} <= set(accuracy[split]):
            ratios = [noise_free_mae(accuracy[split]["selector"], t)
                      / min(noise_free_mae(accuracy[split][mlp], t),
                            noise_free_mae(accuracy[split][mamba3], t)) for t in TARGETS]
            add(f"Selector / better single backbone, noise-free, on {split} (worst target)",
                max(ratios), 1.02, "max")
            below_both += split != "test" and max(ratios) < 1.0
    if any("selector" in accuracy[s] for s in accuracy):
        add("OOD sets where the Selector is below both backbones on every target", below_both,
            2, "min")
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
    return write_json(path, {"format": FORMAT, **results})


def write_json(path, payload: dict) -> Path:
    """``payload`` as JSON (``_finite``: NaN and inf as null), written atomically."""
    return atomic_write_text(path, json.dumps(_finite(payload), indent=1, sort_keys=True,
                                              allow_nan=False) + "\n")


def read_json(path, fmt: str, what: str, missing: str) -> dict:
    """A JSON file whose "format" is ``fmt``: ValueError naming the file if it is missing
    (with ``missing``: what to run) or is not ``what``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: {missing}")
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise ValueError(f"{path} is not {what} (format {fmt!r})")
    return payload


def read_metrics(path) -> dict:
    """Read a ``metrics.json``; anything else → ValueError naming the file."""
    return read_json(path, FORMAT, "a D2TL Coverage metrics file",
                     "run the pipeline (notebook 04_evaluate) first")


# -- every model on every split: what notebook 04 runs --------------------------------------

@dataclass
class Models:
    """Everything that predicts, loaded once: the registered backbones (key → model), the
    Selector over the primary and the backup, and the LightGBM baseline (None until fitted)."""
    backbones: dict
    selector: object
    lightgbm: object = None

    def predictors(self, physics_assumptions: dict | None = None) -> dict:
        """{display name: predict} of LightGBM, each backbone and the Selector, with the noise-free
        physics first when its assumptions are given."""
        names = model_names()
        out = {} if physics_assumptions is None else {names["physics"]: partial(
            rules.link_budget_predictor, **physics_assumptions)}
        if self.lightgbm is not None:
            out[names["lightgbm"]] = self.lightgbm.predict
        out.update({names[k]: m.predict for k, m in self.backbones.items()})
        out[names["selector"]] = self.selector.predict
        return out


def load_models(data_dir, thresholds: bool = True, lightgbm: bool = True) -> Models:
    """Every registered backbone from its checkpoint (refused if trained on another data set),
    the Selector (with its saved validation thresholds if ``thresholds``) and, if
    ``lightgbm``, the saved LightGBM baseline."""
    data = paths.dataset_dir(data_dir)
    manifest = dataset.manifest_sha256(data)
    primary, backup = registry.by_role("primary"), registry.by_role("backup")
    results = paths.resolve(data_dir) / "results"
    selector = Selector.from_checkpoints(
        primary.checkpoint_path(data_dir), backup.checkpoint_path(data_dir),
        data_manifest_sha256=manifest,
        thresholds_path=results / "selector_thresholds.json" if thresholds else None)
    backbones = {}
    for key, backbone in registry.BACKBONES.items():
        backbones[key] = {primary.key: selector.mlp, backup.key: selector.mamba}.get(key) or \
            trainer.load_checkpoint(backbone.checkpoint_path(data_dir), manifest)["model"]
    booster = LightGBMBaseline.load(paths.models_dir(data_dir) / "lightgbm",
                                    data_manifest_sha256=manifest) if lightgbm else None
    return Models(backbones, selector, booster)


def predictions(frame: pd.DataFrame, models: Models, implementation_gap_db: float,
                oracle: bool = True) -> tuple[dict, pd.DataFrame]:
    """({model key: predictions} on ``frame``'s rows for every model of ``model_keys()``, the
    Selector's routing flags). The oracle (if ``oracle``) scores ``frame``'s medians; LightGBM
    is left out if ``models`` has none. The Selector's two backbones run once: their own
    answers are the ones it routes between."""
    features = frame[FEATURES]
    selector = models.selector
    primary, backup = registry.by_role("primary").key, registry.by_role("backup").key
    mlp_pred, mamba_pred, flags = selector.route(features)
    out = {"oracle": oracle.oracle_predictions(frame, implementation_gap_db)} if oracle else {}
    if models.lightgbm is not None:
        out["lightgbm"] = models.lightgbm.predict(features)
    for key, model in models.backbones.items():
        out[key] = {primary: mlp_pred, backup: mamba_pred}.get(key)
        if out[key] is None:
            out[key] = model.predict(features)
    out["selector"] = selector.combine(mlp_pred, mamba_pred, flags)
    return out, flags


def evaluation_splits(data) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What an evaluation reads from the data set folder ``data``: the train split's features
    and targets (LightGBM's fit), the whole validation split and every split it scores."""
    return (dataset.load_split(data, "train", schema.MODEL_COLUMNS),
            dataset.load_split(data, "val"),
            {split: dataset.load_split(data, split) for split in EVAL_SPLITS})


def lightgbm_threads() -> int:
    """LightGBM's thread count: the kernel's CPU budget, as torch's (``OMP_NUM_THREADS`` where
    the pipeline sets it for a chain run beside others, else one per core). A fixed count
    above the budget makes LightGBM's OpenMP threads wait on each other: the paper
    evaluation, set to two threads beside a one-thread chain, took over 55 min instead of
    about 25."""
    return torch.get_num_threads()


def evaluate(profile: str, data_dir, *, seed: int, lightgbm_space: dict,
             lightgbm_candidates: int, lightgbm_search_rows: int, lightgbm_max_rounds: int,
             lightgbm_early_stopping: int, lightgbm_min_improvement: float,
             selector_quantile: float, physics_rows: int, latency_repeats: int,
             onnx_backbones: list, log=print) -> dict:
    """Every model on the test split and every OOD set; writes ``results/metrics.json`` (the
    schema above), ``results/selector_thresholds.json`` and ``models/lightgbm/``, and returns
    the results. The arguments are the evaluation stage's parameters (``params.RULES``), checked
    here too, and recorded in metrics.json.

    In order: the Selector's divergence threshold from the validation split only; LightGBM,
    ``lightgbm_candidates`` random draws from ``lightgbm_space`` searched on
    ``lightgbm_search_rows`` training rows, the best refitted on all; accuracy of every
    model on every split (all rows); the raw heads on test; the physics rules on the first
    ``physics_rows`` rows of each split; the routing; the ONNX export of each backbone in
    ``onnx_backbones`` (``models/onnx/<checkpoint stem>.onnx``); latency, the GEMM peaks, the MLP's
    roofline and its bf16 cost on the test split (``serving_summary``); the goals.
    """
    parameters = validation.validate("04_evaluate", {
        "profile": profile, "data_dir": data_dir, "seed": seed,
        "lightgbm_space": lightgbm_space, "lightgbm_candidates": lightgbm_candidates,
        "lightgbm_search_rows": lightgbm_search_rows, "lightgbm_max_rounds": lightgbm_max_rounds,
        "lightgbm_early_stopping": lightgbm_early_stopping,
        "lightgbm_min_improvement": lightgbm_min_improvement,
        "selector_quantile": selector_quantile, "physics_rows": physics_rows,
        "latency_repeats": latency_repeats, "onnx_backbones": onnx_backbones})
    data = paths.dataset_dir(data_dir)
    models_dir, results_dir = paths.models_dir(data_dir), paths.resolve(data_dir) / "results"
    manifest = dataset.manifest_sha256(data)
    assumptions = dataset.physics_assumptions(dataset.load_stats(data))
    gap = assumptions["implementation_gap_db"]
    train, val, frames = evaluation_splits(data)
    models = load_models(data_dir, thresholds=False, lightgbm=False)
    selector = models.selector
    log(f"train {len(train)}, validation {len(val)} rows; evaluation sets: "
        + ", ".join(f"{s} {len(f)}" for s, f in frames.items()))

    selector.fit_thresholds(val, quantile=selector_quantile)
    selector.save_thresholds(results_dir / "selector_thresholds.json")
    models.lightgbm = LightGBMBaseline(seed=seed, num_threads=lightgbm_threads(),
                                       num_boost_round=lightgbm_max_rounds,
                                       early_stopping_rounds=lightgbm_early_stopping,
                                       min_improvement=lightgbm_min_improvement)
    models.lightgbm.fit(train, val, candidates=random_candidates(lightgbm_space,
                                                                 lightgbm_candidates, seed),
                        data_manifest_sha256=manifest, search_rows=lightgbm_search_rows)
    models.lightgbm.save(models_dir / "lightgbm")
    lightgbm_cost = {k: sum(c[k] for c in models.lightgbm.chosen.values())
                     for k in ("search_s", "refit_s")}
    capped = [t for t, c in models.lightgbm.chosen.items() if c["cap_reached"]]
    log(f"LightGBM: {lightgbm_candidates} candidates per target on "
        f"{models.lightgbm.search_rows or len(train)} rows in {lightgbm_cost['search_s']:.0f} s, "
        f"refit on {len(train)} rows in {lightgbm_cost['refit_s']:.0f} s; the cap of "
        f"{lightgbm_max_rounds} trees reached by {capped or 'no target'}")

    accuracy, routing, bands = accuracy_of(frames, models, gap)
    test_features = frames["test"][FEATURES]
    raw_heads = {k: metrics.target_metrics(frames["test"], m.predict(test_features, outputs="raw"))
                 for k, m in models.backbones.items()}
    physics = rule_checks(frames, models, assumptions, physics_rows, seed)
    rows = frames["test"][FEATURES].sample(n=4096, replace=len(frames["test"]) < 4096,
                                           random_state=seed)
    onnx_paths = {key: serving.export_onnx(
        models.backbones[key],
        models_dir / "onnx" / f"{Path(registry.get(key).checkpoint).stem}.onnx",
        frames["test"][FEATURES].head(64)) for key in onnx_backbones}
    timings = latency.measure(latency.variants(models, onnx_paths), rows, batches=(1, 4096),
                              repeats={1: latency_repeats, 4096: max(3, latency_repeats // 10)})
    timings = timings.to_dict(orient="records")
    checkpoints = {k: io.sha256_file(b.checkpoint_path(data_dir))
                   for k, b in registry.BACKBONES.items()}
    checkpoints["lightgbm"] = io.sha256_file(models_dir / "lightgbm"
                                                  / "lightgbm_baseline.json")
    results = {
        "profile": profile, "data_manifest_sha256": manifest, "checkpoints": checkpoints,
        "parameters": parameters,
        "splits": {s: {"rows": len(f), "physics_rows": min(physics_rows, len(f))}
                   for s, f in frames.items()},
        "accuracy": accuracy, "frequency_bands": bands,
        "training": training_summary(models.backbones, load_histories(data_dir)),
        "raw_heads": {"test": raw_heads}, "physics": physics,
        "routing": routing,
        "selector": {"thresholds": selector.thresholds, "rules": list(selector.rules),
                     "routing_tolerances": {r: selector.tolerances[r] for r in selector.rules}},
        "lightgbm": {"chosen": models.lightgbm.chosen, "search": models.lightgbm.search_results,
                     "search_rows": models.lightgbm.search_rows, "space": lightgbm_space,
                     "candidates": lightgbm_candidates, **lightgbm_cost},
        "latency": timings, "machine": machine.machine(),
        "serving": serving_summary(models, timings, frames["test"], onnx_paths),
        "goals": goals(accuracy, physics),
    }
    path = write_metrics(results_dir / "metrics.json", results)
    log(f"wrote {path.relative_to(paths.project_root())}")
    return read_metrics(path)  # as the book will read it: JSON types, inf/NaN as None


def accuracy_of(frames: dict, models: Models, gap: float) -> tuple[dict, dict, dict]:
    """(accuracy, routing, frequency bands) of every model on each of ``frames`` ({split:
    rows}), as metrics.json holds them."""
    accuracy, routing, bands = {}, {}, {}
    for split, frame in frames.items():
        answers, flags = predictions(frame, models, gap)
        accuracy[split] = {m: noise_free_metrics(frame, p, gap) for m, p in answers.items()}
        routing[split] = routing_entry(flags)
        if split in BAND_SPLITS:
            bands[split] = frequency_bands(frame, answers, gap)
    return accuracy, routing, bands


def rule_checks(frames: dict, models: Models, assumptions: dict, rows: int, seed: int) -> dict:
    """{set: {model: {rule: check}}}: the physics rules (``physics_checks.check``) of the
    noise-free link budget, LightGBM, every backbone and the Selector on the first ``rows``
    rows of each split in ``frames`` and on ``rows`` points drawn from the whole domain
    ("domain", drawn with ``seed``)."""
    checkers = {"physics": partial(rules.link_budget_predictor, **assumptions),
                "lightgbm": models.lightgbm.predict,
                **{k: m.predict for k, m in models.backbones.items()},
                "selector": models.selector.predict}
    rule_sets = {**{split: frame[FEATURES].iloc[:rows] for split, frame in frames.items()},
                 "domain": sampling.draw_features(rows, np.random.default_rng([seed, 3]))}
    gap = assumptions["implementation_gap_db"]
    return {name: {m: rules.check(p, links, gap).to_dict(orient="index")
                   for m, p in checkers.items()} for name, links in rule_sets.items()}


REPLICATE_FORMAT = "d2tl-coverage-replicate/2"


def replicate(profile: str, data_dir, *, seed: int, lightgbm_params: dict,
              lightgbm_max_rounds: int, lightgbm_early_stopping: int,
              lightgbm_min_improvement: float, selector_quantile: float, physics_rows: int,
              log=print) -> dict:
    """A replicate's evaluation (``replicates``): the Selector's thresholds fitted on its
    validation split, LightGBM refitted with the main run's chosen ``lightgbm_params`` and this
    ``seed``, then every model on the test split and every OOD set, and the physics rules
    (``rule_checks``, ``physics_rows`` rows a set; 0: none, "physics" is None). Writes
    ``results/replicate.json``
    ({"format", "profile", "seed", "train_rows", "data_manifest_sha256", "accuracy",
    "routing", "frequency_bands", "physics", "training", "lightgbm"}) and returns it. Latency
    and ONNX stay the main run's."""
    validation.validate("replicate", {
        "profile": profile, "data_dir": data_dir, "seed": seed,
        "lightgbm_params": lightgbm_params, "lightgbm_max_rounds": lightgbm_max_rounds,
        "lightgbm_early_stopping": lightgbm_early_stopping,
        "lightgbm_min_improvement": lightgbm_min_improvement,
        "selector_quantile": selector_quantile, "physics_rows": physics_rows})
    data = paths.dataset_dir(data_dir)
    manifest = dataset.manifest_sha256(data)
    assumptions = dataset.physics_assumptions(dataset.load_stats(data))
    gap = assumptions["implementation_gap_db"]
    train, val, frames = evaluation_splits(data)
    models = load_models(data_dir, thresholds=False, lightgbm=False)
    models.selector.fit_thresholds(val, quantile=selector_quantile)
    models.lightgbm = LightGBMBaseline(seed=seed, num_threads=lightgbm_threads(),
                                       num_boost_round=lightgbm_max_rounds,
                                       early_stopping_rounds=lightgbm_early_stopping,
                                       min_improvement=lightgbm_min_improvement)
    models.lightgbm.fit(train, val, candidates={t: [c] for t, c in lightgbm_params.items()},
                        data_manifest_sha256=manifest)
    log(f"seed {seed}: train {len(train)}, validation {len(val)} rows; LightGBM refitted in "
        f"{sum(c['search_s'] for c in models.lightgbm.chosen.values()):.0f} s")
    accuracy, routing, bands = accuracy_of(frames, models, gap)
    results = {"format": REPLICATE_FORMAT, "profile": profile, "seed": seed,
               "train_rows": len(train), "data_manifest_sha256": manifest,
               "accuracy": accuracy, "routing": routing, "frequency_bands": bands,
               "physics": rule_checks(frames, models, assumptions, physics_rows, seed)
               if physics_rows else None,
               "training": training_summary(models.backbones, load_histories(data_dir)),
               "lightgbm": {t: {k: c[k] for k in ("best_iteration", "val_mae", "cap_reached")}
                            for t, c in models.lightgbm.chosen.items()}}
    return read_replicate(write_json(paths.resolve(data_dir) / "results" / "replicate.json",
                                     results))


def read_replicate(path) -> dict:
    """Read a replicate's ``results/replicate.json``; anything else → ValueError naming it."""
    return read_json(path, REPLICATE_FORMAT, "a replicate's result",
                     "the replicate's chain has not finished: run the pipeline")


def serving_summary(models: Models, timings: list, test: pd.DataFrame, onnx_paths: dict) -> dict:
    """The prediction API against the hardware (metrics.json ``serving``): this machine's GEMM
    peaks (fp32, bf16), the MLP's FLOPs per row and the fraction of its roofline each variant
    reaches at batch 4096, the cost of serving the MLP in bf16 on the test split
    (``serving.precision_cost``), the ONNX files timed, and the serving goals."""
    primary = registry.by_role("primary").key
    mlp = models.backbones[primary]
    peaks = {"fp32": latency.gemm_peak_gflops(torch.float32),
             "bf16": latency.gemm_peak_gflops(torch.bfloat16)}
    flops = latency.linear_flops_per_row(mlp)
    out = {"gemm_peak_gflops": peaks, "bf16_native": machine.bf16_native(),
           "cpu_flags": machine.cpu_flags(), "mlp_flops_per_row": flops,
           "roofline": latency.roofline(timings, registry.get(primary).name, flops, peaks),
           "bf16_cost": serving.precision_cost(mlp, test, "bf16"),
           "onnx": {k: {"file": p.name, "opset": serving.ONNX_OPSET} for k, p in onnx_paths.items()}}
    out["goals"] = serving_goals(timings, out)
    return out


def serving_goals(timings: list, summary: dict) -> list[dict]:
    """The prediction API's goals (issue "The prediction API at the hardware's speed"): ratios
    of this run's timings, so they hold or fail on the machine that ran it (they vary run to
    run; the book shows them beside the latency table, not in the paper's goals)."""
    names = model_names()
    mlp = names[registry.by_role("primary").key]

    def timed(model, variant, batch, column):
        return timing(timings, model, variant, batch, column, float("nan"))

    def best(rows):
        return max((r["fraction_of_roofline"] for r in rows), default=float("nan"))

    roof = summary["roofline"]
    network_b1 = timed(mlp, "network, eager", 1, "median_ms")
    # bf16 is timed only where the CPU has it natively (``latency.bf16_native``)
    bf16 = [("MLP bf16 at batch 4096 / bf16 roofline",
             best(r for r in roof if r["precision"] == "bf16"), 0.6, "min")] \
        if any(r["precision"] == "bf16" for r in roof) else []
    rows = []
    for goal, value, limit, kind in (
            ("MLP fp32 at batch 4096 / fp32 roofline (best fp32 form)",
             best(r for r in roof if r["precision"] == "fp32"), 0.85, "min"),
            *bf16,
            ("Selector predict at batch 4096 / MLP network (eager) rows/s",
             timed("Selector", "predict", 4096, "rows_per_s")
             / timed(mlp, "network, eager", 4096, "rows_per_s"), 0.4, "min"),
            ("MLP predict at batch 1 / MLP network (eager) latency",
             timed(mlp, "predict", 1, "median_ms") / network_b1, 3.0, "max"),
            ("Selector predict at batch 1 (ms)",
             timed("Selector", "predict", 1, "median_ms"), 1.0, "max"),
            ("MLP bf16 noise-free MAE change: received power (dB)",
             abs(summary["bf16_cost"]["targets"]["received_power_dbm"]["mae_change"]),
             serving.ADMISSIBLE_COST["received_power_dbm"], "max"),
            ("MLP bf16 noise-free MAE change: radius (m)",
             abs(summary["bf16_cost"]["targets"]["coverage_radius_m"]["mae_change"]),
             serving.ADMISSIBLE_COST["coverage_radius_m"], "max")):
        rows.append(goal_row(goal, value, limit, kind))
    return rows


def serving_table(results: dict) -> pd.DataFrame:
    """The serving goals with their measured values (they vary from run to run); the verdict
    in words."""
    return tables.goals(pd.DataFrame(results["serving"]["goals"]), GOAL_DECIMALS)


def roofline_table(results: dict) -> pd.DataFrame:
    """The MLP's variants at batch 4096 against this machine's GEMM roofline (rows/s whole,
    the fraction to three decimals)."""
    peaks = results["serving"]["gemm_peak_gflops"]
    table = pd.DataFrame(results["serving"]["roofline"]).set_index("variant")
    out = pd.DataFrame({
        "precision": table["precision"],
        "GEMM peak [GFLOP/s]": table["precision"].map(peaks).round(1),
        "roofline [rows/s]": table["roofline_rows_per_s"].round().astype(int),
        "measured [rows/s]": table["rows_per_s"].round().astype(int),
        "fraction of roofline": table["fraction_of_roofline"].round(3)})
    return out


# -- the tables the evaluation notebook and the book show -----------------------------------

def ood_table(accuracy: dict, stat: str = "mae") -> pd.DataFrame:
    """``table`` of every OOD split, one block of rows per split."""
    return pd.concat({s: table(accuracy, s, stat) for s in OOD_SPLITS if s in accuracy})


def ood_violation_table(physics: dict) -> pd.DataFrame:
    """``violation_table`` of every OOD split, one block of rows per split."""
    return pd.concat({s: violation_table(physics, s) for s in OOD_SPLITS if s in physics})


def raw_heads_table(results: dict) -> pd.DataFrame:
    """Test MAE of each backbone's raw heads beside the physics-consistent outputs it serves."""
    names, raw, served = model_names(), results["raw_heads"]["test"], results["accuracy"]["test"]
    return pd.DataFrame({(names[m], kind): {t: source[m][t]["mae"] for t in TARGETS}
                         for m in raw for kind, source in (("raw heads", raw),
                                                           ("served", served))})


def routing_table(results: dict, percent: bool = False) -> pd.DataFrame:
    """Per split: the share of rows each backbone answered and of each routing reason, the
    reasons in the order the Selector checks them."""
    from .selector import REASONS

    names = model_names()
    primary, backup = registry.by_role("primary").key, registry.by_role("backup").key
    def scaled(v):  # None: a half-width where the share did not vary over the seeds
        return None if v is None else (100.0 if percent else 1.0) * v

    return pd.DataFrame({s: {f"to {names[primary]}": scaled(r["to_mlp"]),
                             f"to {names[backup]}": scaled(r["to_mamba"]),
                             **{f"reason: {k}": scaled(r["reasons"][k])
                                for k in REASONS if k in r["reasons"]}}
                         for s, r in ((s, results["routing"][s]) for s in EVAL_SPLITS
                                      if s in results["routing"])})


def selector_table(results: dict) -> pd.DataFrame:
    """The Selector's routing rules with what each says and its tolerance (with its unit),
    and its divergence threshold."""
    sel = results["selector"]
    out = tables.tolerances({rule: sel["routing_tolerances"][rule] for rule in sel["rules"]})
    divergence = pd.DataFrame(
        {"tolerance": [f"{sel['thresholds']['divergence']:.4f} (normalised)"]},
        index=pd.MultiIndex.from_tuples([(
            "divergence", "the backbones' largest disagreement over the targets, each in its "
                          "training transform over its training-split std")]))
    return pd.concat([out, divergence])


def lightgbm_table(results: dict) -> pd.DataFrame:
    """LightGBM's chosen parameters per target, its trees, whether they reached the cap
    (validation MAE may still have been falling) and its validation MAE (the search's cost,
    which varies from run to run, is ``latency_numbers``' ``lightgbm_tuning_min``)."""
    return pd.DataFrame({t: {**c["params"], "trees": c["best_iteration"],
                             "cap reached": c["cap_reached"], "val MAE": c["val_mae"]}
                         for t, c in results["lightgbm"]["chosen"].items()}).T


def noise_free_table(accuracy: dict, splits=EVAL_SPLITS, models=None) -> pd.DataFrame:
    """Noise-free MAE (``noise_free_mae``) per split and target: a column per model."""
    names = model_names()
    chosen = [m for m in (models or model_keys()) if m != "oracle"]
    return pd.concat({s: pd.DataFrame({names.get(m, m): [noise_free_mae(accuracy[s][m], t)
                                                         for t in TARGETS]
                                       for m in chosen if m in accuracy[s]},
                                      index=pd.Index(TARGETS, name="noise-free MAE"))
                      for s in splits if s in accuracy})


def band_table(results: dict, splits=BAND_SPLITS,
               targets=("received_power_dbm", "coverage_radius_m")) -> pd.DataFrame:
    """Noise-free MAE per frequency band of each of ``splits``, bands in frequency order (rows:
    set, band with its row count, and target; columns: models)."""
    names, order = model_names(), [band_label(*band) for band in FREQUENCY_BANDS_GHZ]
    blocks = {}
    for split in splits:
        bands = results["frequency_bands"].get(split, {})   # metrics.json sorts its keys
        for band, entry in sorted(bands.items(), key=lambda item: order.index(item[0])):
            blocks[(split, band, entry["rows"])] = pd.DataFrame(
                {names.get(m, m): [entry[m][t] for t in targets] for m in entry if m != "rows"},
                index=pd.Index(list(targets), name="noise-free MAE"))
    return pd.concat(blocks, names=["set", "band", "rows"])


def training_table(results: dict) -> pd.DataFrame:
    """Per backbone: parameters, epochs run, best epoch, training time (the sum of its epochs
    on the machine that ran it), and whether validation MAE was still improving at the end."""
    names = model_names()
    return pd.DataFrame({names[k]: {
        "parameters": tables.number(int(v["parameters"])),
        "epochs": tables.number(int(v["epochs"])),
        "best epoch": tables.number(int(v["best_epoch"])),
        "training time [min]": tables.number(v["training_time_s"] / 60.0, 1),
        "s per epoch": tables.number(v["training_time_s"] / v["epochs"], 1),
        "still improving at the end": "yes" if v["still_improving"] else "no"}
        for k, v in results["training"].items()}).T


def goals_table(results: dict) -> pd.DataFrame:
    """The paper's goals: measured value, the limit with its direction, met or not met."""
    return tables.goals(pd.DataFrame(results["goals"]), GOAL_DECIMALS)


def book_tables(results: dict, spread: dict | None = None, goals: list | None = None) -> dict:
    """The tables notebook 04 shows and the book's pages paste (myst-nb glue names → tables
    of strings, ``tables``: units in the labels, verdicts in words, rules in their order); the
    tables that vary from run to run are ``latency_tables``.

    With ``spread`` (``intervals.spread`` of two or more seeds) the tables of accuracy, of
    the frequency bands, of routing and of the physics rules show each cell as mean ±
    half-width over the seeds (``tables.plus_minus``), and the goals table shows ``goals``
    (``intervals.goals``) where given; the others are the main run's (seed 0)."""
    splits = results["splits"]
    over_seeds = _over_seeds(results, spread)
    strict, routing = tables.tolerances(rules.TOLERANCES), selector_table(results)
    judged = goals_table(results if goals is None else {"goals": goals})
    return {
        "table_test_mae": over_seeds(lambda r: tables.by_target(table(r["accuracy"], "test"))),
        "table_test_vs_median": over_seeds(lambda r: tables.by_target(
            table(r["accuracy"], "test", "mae_vs_median").loc[["received_power_dbm",
                                                                "sinr_db"]])),
        "table_test_r2": over_seeds(lambda r: tables.by_target(
            table(r["accuracy"], "test", "r2"), decimals=5, unit="")),
        "table_ood_mae": over_seeds(lambda r: tables.by_target(ood_table(r["accuracy"]))),
        "table_noise_free": over_seeds(lambda r: tables.by_target(
            noise_free_table(r["accuracy"]))),
        "table_bands": over_seeds(lambda r: tables.by_target(band_table(r))),
        "table_raw_heads": tables.by_target(raw_heads_table(results)),
        "table_goals": judged,
        # the same as Markdown (glued as HTML): the goals' names wrap on the book's page
        "table_goals_md": tables.markdown(judged, ("goal",)),
        "table_physics_test": over_seeds(lambda r: tables.violations(
            violation_table(r["physics"], "test"), splits["test"]["physics_rows"],
            splits["test"]["rows"])),
        "table_physics_ood": over_seeds(lambda r: tables.violations(
            ood_violation_table(r["physics"]), 0, 0)),
        "table_tolerances": strict,
        "table_selector": routing,
        # the same two as Markdown (glued as HTML): their prose wraps on the book's pages
        "table_tolerances_md": tables.markdown(strict, ("rule", "what it says")),
        "table_selector_md": tables.markdown(routing, ("rule", "what it says")),
        "table_routing": over_seeds(lambda r: tables.percentages(routing_table(r, True))),
        "table_lightgbm": tables.formatted(lightgbm_table(results)),
    }


def _over_seeds(results: dict, spread: dict | None):
    """``build`` (results → a table of strings) → that table; with a ``spread`` of two or more
    seeds, built from their means and their half-widths, cell by cell "mean ± half-width"."""
    if not spread or spread["n"] < 2:
        return lambda build: build(results)
    mean, half = ({**results, **spread[k]} for k in ("mean", "half"))
    return lambda build: tables.plus_minus(build(mean), build(half))


def latency_tables(results: dict) -> dict:
    """The tables that vary from run to run, unlike ``book_tables``: latency, the training
    table (its training times), the serving goals and the roofline."""
    both = latency.table(results["latency"], ("median_ms", "rows_per_s"))
    return {"table_latency": tables.formatted(latency.table(results["latency"]), default=3),
            "table_latency_both": tables.formatted(
                both, {c: 0 for c in both.columns if c[0] == "rows_per_s"}, default=3),
            "table_training": training_table(results),
            "table_serving": serving_table(results),
            "table_roofline": tables.formatted(roofline_table(results), default=3)}


def book_numbers(results: dict, histories: dict, n_train: int, n_test: int) -> dict:
    """The numbers the book's prose pastes (glue names → values), all from ``results`` (the
    metrics.json content) and the training ``histories`` ({backbone key: history})."""
    mlp, mamba = registry.by_role("primary").key, registry.by_role("backup").key
    return {
        "n_train": n_train, "n_test": n_test,
        **accuracy_numbers(results["accuracy"], results["routing"]),
        "selector_divergence_threshold": results["selector"]["thresholds"]["divergence"],
        "mlp_best_epoch": histories[mlp]["best_epoch"],
        "mamba_best_epoch": histories[mamba]["best_epoch"],
        "mlp_epochs": len(histories[mlp]["val_mae"]),
        "lightgbm_candidates": results["lightgbm"]["candidates"],
        "lightgbm_search_rows": results["lightgbm"]["search_rows"]  # None: every training row
        or next(iter(results["lightgbm"]["chosen"].values()))["train_rows"],
        "lightgbm_capped": sum(bool(c["cap_reached"])
                               for c in results["lightgbm"]["chosen"].values()),
        "mamba_epochs": len(histories[mamba]["val_mae"]),
    }


def accuracy_numbers(acc: dict, routing: dict) -> dict:
    """The quoted numbers that come from one run's ``accuracy`` and ``routing`` (as
    metrics.json holds them): ``book_numbers``' part that differs from seed to seed."""
    test = acc["test"]
    mlp, mamba = registry.by_role("primary").key, registry.by_role("backup").key

    def ratio(split, model, target, over="oracle"):
        return acc[split][model][target]["mae"] / acc[split][over][target]["mae"]

    numbers = {
        "mlp_power_mae": test[mlp]["received_power_dbm"]["mae"],
        "mlp_power_vs_median": test[mlp]["received_power_dbm"]["mae_vs_median"],
        "mlp_power_ratio": ratio("test", mlp, "received_power_dbm"),
        "oracle_power_mae": test["oracle"]["received_power_dbm"]["mae"],
        "mlp_sinr_vs_median": test[mlp]["sinr_db"]["mae_vs_median"],
        "mlp_sinr_ratio": ratio("test", mlp, "sinr_db"),
        "mlp_radius_r2": test[mlp]["coverage_radius_m"]["r2"],
        "mlp_radius_mae": test[mlp]["coverage_radius_m"]["mae"],
        "mlp_area_r2": test[mlp]["coverage_area_km2"]["r2"],
        "mlp_qos_ratio": ratio("test", mlp, "qos_score"),
        "lightgbm_power_vs_median": test["lightgbm"]["received_power_dbm"]["mae_vs_median"],
        "lightgbm_radius_over_mlp": ratio("test", "lightgbm", "coverage_radius_m", over=mlp),
        "mamba_power_vs_median": test[mamba]["received_power_dbm"]["mae_vs_median"],
        "mamba_radius_mae": test[mamba]["coverage_radius_m"]["mae"],
        "mamba_radius_over_mlp": ratio("test", mamba, "coverage_radius_m", over=mlp),
        "selector_test_to_mamba": routing["test"]["to_mamba"],
    }
    for split in acc:
        if split != "test":
            numbers[f"mamba_over_mlp_{split}"] = float(np.mean(
                [ratio(split, mamba, t, over=mlp) for t in TARGETS]))
            numbers[f"lightgbm_over_mlp_{split}"] = float(np.mean(
                [ratio(split, "lightgbm", t, over=mlp) for t in TARGETS]))
    for split in acc:  # noise-free errors: received power vs the median, radius
        for model in (*registry.BACKBONES, "selector"):
            if model in acc[split]:
                numbers[f"{model}_power_vs_median_{split}"] = \
                    acc[split][model]["received_power_dbm"]["mae_vs_median"]
                numbers[f"{model}_radius_mae_{split}"] = \
                    acc[split][model]["coverage_radius_m"]["mae"]
    for reason, fraction in routing["test"]["reasons"].items():
        numbers[f"selector_test_{reason}"] = fraction
    return numbers


def latency_numbers(results: dict) -> dict:
    """The latency figures the book's prose pastes (they vary from run to run)."""
    names = model_names()
    mlp, mamba = names[registry.by_role("primary").key], names[registry.by_role("backup").key]

    def timed(model, variant, batch, column):
        return timing(results["latency"], model, variant, batch, column)

    return {
        "mlp_network_b1_us": 1e3 * timed(mlp, "network, frozen TorchScript", 1, "median_ms"),
        "mlp_predict_b1_ms": timed(mlp, "predict", 1, "median_ms"),
        "mlp_predict_rows_per_s": timed(mlp, "predict", 4096, "rows_per_s"),
        "mlp_predict_array_b1_ms": timed(mlp, "predict_array", 1, "median_ms"),
        "mamba_predict_b1_ms": timed(mamba, "predict", 1, "median_ms"),
        "mamba_predict_rows_per_s": timed(mamba, "predict", 4096, "rows_per_s"),
        "selector_predict_array_b1_ms": timed("Selector", "predict_array", 1, "median_ms"),
        "gemm_fp32_gflops": results["serving"]["gemm_peak_gflops"]["fp32"],
        "gemm_bf16_gflops": results["serving"]["gemm_peak_gflops"]["bf16"],
        "bf16_hardware": "natively" if results["serving"]["bf16_native"] else
        "emulated (this CPU has neither avx512_bf16 nor AMX: bf16 is not timed here)",
        "selector_predict_b1_ms": timed("Selector", "predict", 1, "median_ms"),
        "selector_predict_rows_per_s": timed("Selector", "predict", 4096, "rows_per_s"),
        "lightgbm_predict_b1_ms": timed("LightGBM", "predict", 1, "median_ms"),
        "lightgbm_tuning_min": (results["lightgbm"]["search_s"]
                                + results["lightgbm"]["refit_s"]) / 60.0,
        "torch_threads": results["machine"]["torch_threads"],
    }


def load_histories(data_dir) -> dict:
    """{backbone key: its training history} of every registered backbone."""
    return {k: json.loads(b.history_path(data_dir).read_text())
            for k, b in registry.BACKBONES.items()}


def one_link(models: Models, link: dict, physics_assumptions: dict) -> pd.DataFrame:
    """The five targets of one link (a {feature: value} mapping) from the physics (noise-free
    median), each backbone and the Selector, with the backbone that answered and why."""
    row = pd.DataFrame([{c: float(link[c]) for c in FEATURES}])
    answers, flags = predictions(row, models, physics_assumptions["implementation_gap_db"],
                                 oracle=False)
    names = model_names()
    truth = rules.link_budget_predictor(row, **physics_assumptions)
    table = pd.DataFrame({"physics (median)": truth[TARGETS].iloc[0],
                          **{names[k]: p[TARGETS].iloc[0] for k, p in answers.items()}})
    table = table.round(3).astype(object)
    table.loc["answered by", :] = [""] * (len(table.columns) - 1) + [flags["routed_to"].iloc[0]]
    table.loc["reason", :] = [""] * (len(table.columns) - 1) + [
        flags["reason"].iloc[0] or "none: the MLP answers"]
    return table
