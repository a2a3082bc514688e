"""The evaluation stage (what notebook 04 runs: ``evaluate``) and a replicate chain's evaluation
(``replicate``), with their parameters' rules.

``evaluate`` fits the Selector's thresholds and LightGBM, scores every model (``scoring``),
exports ONNX, times latency on a quiet machine (``quiet``, ``serving_summary``) and writes
``metrics.json`` (schema in ``result_files``; goals from ``paper_goals``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..core import io, machine, metrics, paths, progress, validation
from ..core.schema import FEATURES
from ..datasets import dataset
from ..models import baselines, registry
from ..models.baselines import LightGBMBaseline, random_candidates
from . import frontier as frontier_module, latency, quiet, serving
from . import selector as selector_module
from .paper_goals import goals, serving_goals
from .result_files import (EVAL_SPLITS, load_histories, read_metrics, read_replicate,
                           write_metrics, REPLICATE_FORMAT)
from .scoring import (Models, accuracy_of, evaluation_splits, load_models, rule_checks,
                      training_summary)
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
    "selector_tolerance": lambda name, v: selector_module.check_tolerance(v, name),
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
    "selector_tolerance": lambda name, v: selector_module.check_tolerance(v, name),
    "physics_rows": validation.non_negative_int,  # 0: no rule checks (a learning-curve replicate)
    "ood_sets": validation.boolean,  # False: the test split only (a learning-curve replicate)
}


def lightgbm_threads() -> int:
    """LightGBM's thread count: the kernel's CPU budget, as torch's (``OMP_NUM_THREADS`` where
    the pipeline sets it for a chain run beside others, else one per core). A fixed count
    above the budget makes LightGBM's OpenMP threads wait on each other (two threads beside a
    one-thread chain doubled the paper evaluation's time)."""
    return torch.get_num_threads()


def evaluate(profile: str, data_dir, *, seed: int, lightgbm_space: dict,
             lightgbm_candidates: int, lightgbm_search_rows: int, lightgbm_max_rounds: int,
             lightgbm_early_stopping: int, lightgbm_min_improvement: float,
             selector_tolerance: float, physics_rows: int, latency_repeats: int,
             onnx_backbones: list, log=print) -> dict:
    """Every model on the test split and every OOD set; writes ``results/metrics.json`` (the
    schema of ``result_files``), ``results/selector_thresholds.json`` and ``models/lightgbm/``,
    and returns the results. The arguments are the evaluation stage's parameters
    (``PARAMETERS``), checked here too, and recorded in metrics.json.

    In order: the Selector's confidence gate and its threshold for ``selector_tolerance``,
    from the validation split only (``_fit_selector``); LightGBM, ``lightgbm_candidates``
    random draws from ``lightgbm_space`` searched on ``lightgbm_search_rows`` training rows,
    the best refitted on all (``_fit_lightgbm``); accuracy of every model on every split (all
    rows); the raw heads on test; the physics rules on the first ``physics_rows`` rows of each
    split; the routing; the ONNX export of each backbone in ``onnx_backbones``
    (``_export_onnx``); then, on a quiet machine (``quiet.timing``: no replicate stage of the
    run computes meanwhile), latency, the GEMM peaks, the MLP's roofline and its bf16 cost on
    the test split (``_time_latency``, ``serving_summary``), the cascade's frontier and gate
    costs (``frontier``); its risk–coverage; the goals.
    """
    parameters = validation.validate("04_evaluate", PARAMETERS, {
        "profile": profile, "data_dir": data_dir, "seed": seed,
        "lightgbm_space": lightgbm_space, "lightgbm_candidates": lightgbm_candidates,
        "lightgbm_search_rows": lightgbm_search_rows, "lightgbm_max_rounds": lightgbm_max_rounds,
        "lightgbm_early_stopping": lightgbm_early_stopping,
        "lightgbm_min_improvement": lightgbm_min_improvement,
        "selector_tolerance": selector_tolerance, "physics_rows": physics_rows,
        "latency_repeats": latency_repeats, "onnx_backbones": onnx_backbones})
    data = paths.dataset_dir(data_dir)
    models_dir, results_dir = paths.models_dir(data_dir), paths.resolve(data_dir) / "results"
    manifest = dataset.identity(data)
    assumptions = dataset.physics_assumptions(dataset.load_stats(data))
    train, val, frames = evaluation_splits(data)
    models = load_models(data_dir, thresholds=False, lightgbm=False)
    log(f"train {len(train)}, validation {len(val)} rows; evaluation sets: "
        + ", ".join(f"{s} {len(f)}" for s, f in frames.items()))

    progress.report("the Selector's thresholds on validation")
    _fit_selector(models.selector, val, selector_tolerance, seed, results_dir)
    models.lightgbm = _new_lightgbm(seed, lightgbm_max_rounds, lightgbm_early_stopping,
                                    lightgbm_min_improvement)
    lightgbm_cost = _fit_lightgbm(models.lightgbm, train, val, lightgbm_space,
                                  lightgbm_candidates, lightgbm_search_rows, seed, manifest,
                                  models_dir, log)

    progress.report("every model on every split")
    accuracy, routing, bands = accuracy_of(frames, models, assumptions["implementation_gap_db"])
    raw_heads = _raw_heads(models, frames["test"])
    progress.report("the physics rules")
    physics = rule_checks(frames, models, assumptions, physics_rows, seed)
    progress.report("ONNX export and latency")
    onnx_paths = _export_onnx(models, onnx_backbones, models_dir, frames["test"])
    gap = assumptions["implementation_gap_db"]
    with quiet.timing(data_dir, log) as waited:  # no replicate stage computes meanwhile
        timings = _time_latency(models, onnx_paths, frames["test"], seed, latency_repeats)
        serving = serving_summary(models, timings, frames["test"], onnx_paths,
                                  routing["test"]["to_backup"])
        progress.report("the cascade's frontier, from the MLP alone to the backup alone")
        frontier = frontier_module.frontier(models.selector, models.backbones, val, frames, gap)
        gates = frontier_module.gate_costs(models.selector, frames["test"])
    results = {
        "profile": profile, "data_manifest_sha256": manifest,
        "checkpoints": _checksums(data_dir, models_dir), "parameters": parameters,
        "splits": {s: {"rows": len(f), "physics_rows": min(physics_rows, len(f))}
                   for s, f in frames.items()},
        "accuracy": accuracy, "frequency_bands": bands,
        "training": training_summary(models.backbones, load_histories(data_dir)),
        "raw_heads": {"test": raw_heads}, "physics": physics,
        "routing": routing, "selector": _selector_entry(models.selector),
        "frontier": frontier,
        "risk_coverage": frontier_module.risk_coverage(models.selector, frames["test"], gap),
        "gates": gates,
        "lightgbm": {"chosen": models.lightgbm.chosen, "search": models.lightgbm.search_results,
                     "search_rows": models.lightgbm.search_rows, "space": lightgbm_space,
                     "candidates": lightgbm_candidates, **lightgbm_cost},
        "latency": timings, "machine": machine.machine(),
        "serving": {**serving, "quiet_wait_s": waited},
        "goals": goals(accuracy, physics, bands),
    }
    path = write_metrics(results_dir / "metrics.json", results)
    log(f"wrote {path.relative_to(paths.project_root())}")
    return read_metrics(path)  # as the book will read it: JSON types, inf/NaN as None


def _fit_selector(selector: Selector, val: pd.DataFrame, tolerance: float, seed: int,
                  results_dir) -> None:
    """The Selector's gate and threshold fitted on the validation split only, saved as
    ``results/selector_thresholds.json`` (notebooks 05 and 06 reuse them)."""
    selector.fit_thresholds(val, tolerance=tolerance, seed=seed)
    selector.save_thresholds(results_dir / "selector_thresholds.json")


def _new_lightgbm(seed: int, max_rounds: int, early_stopping: int,
                  min_improvement: float) -> LightGBMBaseline:
    """An unfitted LightGBM baseline with the evaluation's stopping rules, on
    ``lightgbm_threads()`` threads."""
    return LightGBMBaseline(seed=seed, num_threads=lightgbm_threads(),
                            num_boost_round=max_rounds, early_stopping_rounds=early_stopping,
                            min_improvement=min_improvement)


def _fit_lightgbm(booster: LightGBMBaseline, train: pd.DataFrame, val: pd.DataFrame,
                  space: dict, candidates: int, search_rows: int, seed: int, manifest: str,
                  models_dir, log) -> dict:
    """Search ``candidates`` random draws from ``space`` on ``search_rows`` training rows, refit
    the best on all, save it under ``models/lightgbm``; returns the total cost in seconds
    ({"search_s", "refit_s"}, summed over the targets)."""
    booster.fit(train, val, candidates=random_candidates(space, candidates, seed),
                data_manifest_sha256=manifest, search_rows=search_rows)
    booster.save(models_dir / "lightgbm")
    cost = {k: sum(c[k] for c in booster.chosen.values()) for k in ("search_s", "refit_s")}
    capped = [t for t, c in booster.chosen.items() if c["cap_reached"]]
    log(f"LightGBM: {candidates} candidates per target on "
        f"{booster.search_rows or len(train)} rows in {cost['search_s']:.0f} s, "
        f"refit on {len(train)} rows in {cost['refit_s']:.0f} s; the cap of "
        f"{booster.num_boost_round} trees reached by {capped or 'no target'}")
    return cost


def _raw_heads(models: Models, test: pd.DataFrame) -> dict:
    """{backbone: target metrics} of each backbone's raw heads (``predict(outputs="raw")``) on
    the test split."""
    return {k: metrics.target_metrics(test, m.predict(test[FEATURES], outputs="raw"))
            for k, m in models.backbones.items()}


def _export_onnx(models: Models, backbones: list, models_dir, test: pd.DataFrame) -> dict:
    """{backbone key: path} of each of ``backbones`` exported as
    ``models/onnx/<checkpoint stem>.onnx`` (traced on the test split's first 64 rows)."""
    return {key: serving.export_onnx(
        models.backbones[key],
        models_dir / "onnx" / f"{Path(registry.get(key).checkpoint).stem}.onnx",
        test[FEATURES].head(64)) for key in backbones}


def _time_latency(models: Models, onnx_paths: dict, test: pd.DataFrame, seed: int,
                  repeats: int) -> list:
    """``latency.measure`` rows (as records) of every variant at batch 1 (``repeats`` times) and
    4096 (a tenth as often, at least 3), on 4096 test rows drawn with ``seed``."""
    rows = test[FEATURES].sample(n=4096, replace=len(test) < 4096, random_state=seed)
    timings = latency.measure(latency.variants(models, onnx_paths), rows, batches=(1, 4096),
                              repeats={1: repeats, 4096: max(3, repeats // 10)})
    return timings.to_dict(orient="records") + frontier_module.link_latency(
        models.selector, test, repeats)


def _checksums(data_dir, models_dir) -> dict:
    """{model: sha256} of each backbone's checkpoint and of the saved LightGBM baseline."""
    checkpoints = {k: io.sha256_file(b.checkpoint_path(data_dir))
                   for k, b in registry.BACKBONES.items()}
    checkpoints["lightgbm"] = io.sha256_file(models_dir / "lightgbm" / "lightgbm_baseline.json")
    return checkpoints


def _selector_entry(selector: Selector) -> dict:
    """metrics.json's ``selector``: thresholds, routing rules and their tolerances."""
    return {"pair": list(selector.keys),
            "thresholds": {k: v for k, v in selector.thresholds.items() if k != "gate"},
            "rules": list(selector.rules),
            "routing_tolerances": {r: selector.tolerances[r] for r in selector.rules}}


def replicate(profile: str, data_dir, *, seed: int, lightgbm_params: dict,
              lightgbm_max_rounds: int, lightgbm_early_stopping: int,
              lightgbm_min_improvement: float, selector_tolerance: float, physics_rows: int,
              ood_sets: bool = True, log=print) -> dict:
    """A replicate's evaluation (``replicates``): the Selector's thresholds fitted on its
    validation split, LightGBM refitted with the main run's chosen ``lightgbm_params`` and this
    ``seed``, then every model on the test split and (``ood_sets``) every OOD set, and the
    physics rules (``rule_checks``, ``physics_rows`` rows a set; 0: none, "physics" is None).
    A learning-curve point needs the test split only (``seeds_stage.learning_curves``): its
    OOD predictions were most of its evaluation's time, LightGBM's above all. Writes
    ``results/replicate.json``
    ({"format", "profile", "seed", "train_rows", "data_manifest_sha256", "accuracy",
    "routing", "frequency_bands", "physics", "training", "lightgbm"}) and returns it. Latency
    and ONNX stay the main run's."""
    validation.validate("replicate", REPLICATE_PARAMETERS, {
        "profile": profile, "data_dir": data_dir, "seed": seed,
        "lightgbm_params": lightgbm_params, "lightgbm_max_rounds": lightgbm_max_rounds,
        "lightgbm_early_stopping": lightgbm_early_stopping,
        "lightgbm_min_improvement": lightgbm_min_improvement,
        "selector_tolerance": selector_tolerance, "physics_rows": physics_rows,
        "ood_sets": ood_sets})
    data = paths.dataset_dir(data_dir)
    manifest = dataset.identity(data)
    assumptions = dataset.physics_assumptions(dataset.load_stats(data))
    gap = assumptions["implementation_gap_db"]
    train, val, frames = evaluation_splits(data, EVAL_SPLITS if ood_sets else ("test",))
    models = load_models(data_dir, thresholds=False, lightgbm=False)
    models.selector.fit_thresholds(val, tolerance=selector_tolerance, seed=seed)
    models.lightgbm = _new_lightgbm(seed, lightgbm_max_rounds, lightgbm_early_stopping,
                                    lightgbm_min_improvement)
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
    return read_replicate(io.write_json(paths.resolve(data_dir) / "results" / "replicate.json",
                                        results))


def serving_summary(models: Models, timings: list, test: pd.DataFrame, onnx_paths: dict,
                    backup_share: float) -> dict:
    """The prediction API against the hardware (metrics.json ``serving``): this machine's GEMM
    peaks (fp32, bf16), the MLP's FLOPs per row and the fraction of its roofline each variant
    reaches at batch 4096, the cost of serving the MLP in bf16 on the test split
    (``serving.precision_cost``), the ONNX files timed, the share of test links the Selector
    routes to the backup (``backup_share``) and the serving goals."""
    primary = registry.by_role("primary").key
    mlp = models.backbones[primary]
    peaks = {"fp32": machine.gemm_peak_gflops(torch.float32),
             "bf16": machine.gemm_peak_gflops(torch.bfloat16)}
    flops = latency.linear_flops_per_row(mlp)
    out = {"gemm_peak_gflops": peaks, "bf16_native": machine.bf16_native(),
           "cpu_flags": machine.cpu_flags(), "mlp_flops_per_row": flops,
           "roofline": latency.roofline(timings, registry.get(primary).name, flops, peaks),
           "bf16_cost": serving.precision_cost(mlp, test, "bf16"),
           "onnx": {k: {"file": p.name, "opset": serving.ONNX_OPSET}
                    for k, p in onnx_paths.items()},
           "selector_backup_share": float(backup_share)}
    out["goals"] = serving_goals(timings, out)
    return out
