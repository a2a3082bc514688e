"""The tables and numbers the book pastes (myst-nb glue names → values), all built from
``metrics.json`` (``evaluation.result_files``): ``book_tables`` and ``book_numbers`` (the same
from run to run), ``latency_tables`` and ``latency_numbers`` (they vary from run to run), and
the tables notebook 04 shows (``table``, ``ood_table``, ``training_table``, ``goals_table``...).
Cells are formatted by ``report.tables``: units in the labels, verdicts in words."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import validation
from ..core.schema import OOD_SPLITS, TARGETS
from ..evaluation import latency, paper_goals
from ..evaluation.paper_goals import GOAL_DECIMALS, timing
from ..evaluation.selector import DEFAULT_TOLERANCE, EVERY, REASONS
from ..evaluation.result_files import (BAND_SPLITS, EVAL_SPLITS, FREQUENCY_BANDS_GHZ, STATS,
                                       band_label, model_keys, model_names)
from ..models import registry
from ..physics import rules
from . import tables

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
    """Per split: the share of rows the primary answered, the share the backup answered, and
    the share each gate sent to the backup, the gates in the order the cascade checks them
    (``selector.REASONS``)."""
    names = model_names()
    primary, backup = registry.by_role("primary").key, registry.by_role("backup").key

    def scaled(v):  # None: a half-width where the share did not vary over the seeds
        return None if v is None else (100.0 if percent else 1.0) * v

    return pd.DataFrame({s: {f"to {names[primary]}": scaled(r["to_primary"]),
                             f"to {names[backup]}": scaled(r["to_backup"]),
                             **{f"reason: {k}": scaled(r["reasons"].get(k, 0.0))
                                for k in REASONS}}
                         for s, r in ((s, results["routing"][s]) for s in EVAL_SPLITS
                                      if s in results["routing"])})


def score_threshold_text(value) -> str:
    """The confidence gate's score threshold as the book shows it: a number, or what a gate
    that routes no row (None) or every in-domain row (``selector.EVERY``) does."""
    if value is None:
        return "none (no link is routed for low confidence)"
    if value <= EVERY:
        return "every in-domain link"
    return tables.number(float(value), 4)


def selector_table(results: dict) -> pd.DataFrame:
    """The cascade's settings: its physics rules, each with what it says and its tolerance
    (with its unit), then the one tolerance a user sets and the confidence gate's score
    threshold fitted on validation for it."""
    sel = results["selector"]
    fitted = sel["thresholds"]
    out = tables.tolerances({rule: sel["routing_tolerances"][rule] for rule in sel["rules"]})
    settings = pd.DataFrame({"tolerance": [
        f"{fitted['tolerance']:g}", score_threshold_text(fitted["score_threshold"]),
        f"{100 * fitted['validation_to_backup']:.2f} %"]},
        index=pd.MultiIndex.from_tuples([
            ("selector_tolerance", "the noise-free error accepted beyond the backup's, per "
                                   "target, in units of the oracle's MAE for received power, "
                                   "SINR and QoS, of the backup's own MAE for radius and area"),
            ("score threshold", "the confidence gate's cut: a link whose predicted excess "
                                "error (in tolerance units) lies above it goes to the backup"),
            ("validation share", "of validation links sent to the backup at this tolerance "
                                 "(the threshold's half of the split)")]))
    return pd.concat([out, settings])


# The frontier table's names of a pair's two ends (the first column names the primary).
ENDS = {"primary_only": "primary only", "backup_only": "backup only"}


def default_pair(results: dict) -> dict:
    """The frontier's entry of the default pair (the registry's primary as primary)."""
    primary = registry.by_role("primary").key
    return next(p for p in results["frontier"]["pairs"].values() if p["primary"] == primary)


def frontier_point(pair: dict, kind: str) -> dict:
    """The pair's point of ``kind``: "primary_only", "backup_only" or "default" (the
    cascade at the default tolerance)."""
    if kind == "default":
        return next(p for p in pair["points"] if p["default"] or (
            p["kind"] == "cascade" and p["tolerance"] == DEFAULT_TOLERANCE))
    return next(p for p in pair["points"] if p["kind"] == kind)


def frontier_table(results: dict, split: str = "test") -> pd.DataFrame:
    """The frontier's points on ``split``, a row per point of each pair (primary only, the
    tolerances from the loosest, backup only; ★ the default): the share sent to the backup,
    the noise-free errors of received power (against the median) and radius, and the rows/s
    of ``predict_array`` at batch 4096 (measured: they vary from run to run)."""
    names, rows = model_names(), {}
    for pair in results["frontier"]["pairs"].values():
        for point in pair["points"]:
            at = point["splits"][split]
            label = ENDS.get(point["kind"], point["label"]) + (" ★" * point["default"])
            rows[(names.get(pair["primary"], pair["primary"]), label)] = [
                f"{100 * at['to_backup']:.1f} %",
                tables.number(at["received_power_dbm"], 3),
                tables.number(at["coverage_radius_m"], 1),
                tables.number(at["rows_per_s"], 0)]
    return tables.unnamed(pd.DataFrame(
        list(rows.values()), index=pd.MultiIndex.from_tuples(list(rows)),
        columns=["to backup", "power [dB]", "radius [m]", "rows/s"]))


def gates_table(results: dict) -> pd.DataFrame:
    """The cascade's gates in their order: what each checks, what it costs per row at batch
    4096 (µs: it varies from run to run) and the share of test rows it alone sends to the
    backup; the primary's and the backup's own passes beside them ("–": they route nothing)."""
    return tables.unnamed(pd.DataFrame(
        {"what it checks": [g["what"] for g in results["gates"]],
         "µs per row": [tables.number(float(g["us_per_row"]), 2) for g in results["gates"]],
         "test rows it routes": ["–" if g["test_share"] is None else
                                 f"{100 * g['test_share']:.2f} %" for g in results["gates"]]},
        index=pd.Index([g["gate"] for g in results["gates"]])))


def lightgbm_table(results: dict) -> pd.DataFrame:
    """LightGBM's chosen parameters per target, its trees, whether they reached the cap
    (validation MAE may still have been falling) and its validation MAE (the search's cost,
    which varies from run to run, is ``latency_numbers``' ``lightgbm_tuning_min``)."""
    return pd.DataFrame({t: {**c["params"], "trees": c["best_iteration"],
                             "cap reached": c["cap_reached"], "val MAE": c["val_mae"]}
                         for t, c in results["lightgbm"]["chosen"].items()}).T


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
    on the machine that ran it), whether validation MAE was still improving at the end, and
    whether it converged (stopped by the patience, not the epoch ceiling)."""
    names = model_names()
    return pd.DataFrame({names[k]: {
        "parameters": tables.number(int(v["parameters"])),
        "epochs": tables.number(int(v["epochs"])),
        "best epoch": tables.number(int(v["best_epoch"])),
        "training time [min]": tables.number(v["training_time_s"] / 60.0, 1),
        "s per epoch": tables.number(v["training_time_s"] / v["epochs"], 1),
        "still improving at the end": "yes" if v["still_improving"] else "no",
        "converged": ("yes" if v.get("converged") else
                      "no: stopped at the epoch ceiling")}
        for k, v in results["training"].items()}).T


def goals_table(results: dict) -> pd.DataFrame:
    """The paper's goals: measured value, the limit with its direction, met or not met."""
    return tables.goals(pd.DataFrame(results["goals"]), GOAL_DECIMALS)


def book_tables(results: dict, spread: dict | None = None, goals: list | None = None) -> dict:
    """The tables notebook 04 shows and the book's pages paste (myst-nb glue names → tables
    of strings, ``tables``: units in the labels, verdicts in words, rules in their order); the
    tables that vary from run to run are ``latency_tables``.

    With ``spread`` (``seeds_stage.spread`` of two or more seeds) the tables of accuracy, of
    the frequency bands, of routing and of the physics rules show each cell as mean ±
    half-width over the seeds (``tables.plus_minus``), and the goals table shows ``goals``
    (``seeds_stage.goals``) where given; the others are the main run's (seed 0)."""
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
            paper_goals.noise_free_table(r["accuracy"]))),
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
    table (its training times), the serving goals, the roofline, and the Selector's frontier
    and gates (their rows/s and µs per row)."""
    both = latency.table(results["latency"], ("median_ms", "rows_per_s"))
    return {"table_latency": tables.formatted(latency.table(results["latency"]), default=3),
            "table_latency_both": tables.formatted(
                both, {c: 0 for c in both.columns if c[0] == "rows_per_s"}, default=3),
            "table_training": training_table(results),
            "table_serving": serving_table(results),
            "table_roofline": tables.formatted(roofline_table(results), default=3),
            **({"table_frontier": frontier_table(results),
                "table_gates_md": tables.markdown(gates_table(results), ("gate",))}
               if "frontier" in results else {})}


def book_numbers(results: dict, histories: dict, n_train: int, n_test: int) -> dict:
    """The numbers the book's prose pastes (glue names → values), all from ``results`` (the
    metrics.json content) and the training ``histories`` ({backbone key: history})."""
    mlp, mamba = registry.by_role("primary").key, registry.by_role("backup").key
    return {
        "n_train": n_train, "n_test": n_test,
        **accuracy_numbers(results["accuracy"], results["routing"]),
        **selector_numbers(results),
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


def selector_numbers(results: dict) -> dict:
    """The Selector's settings and, on the test split, the noise-free errors of its default
    point on the frontier against the backup alone and the primary alone (the same from run
    to run; their speeds are ``latency_numbers``')."""
    fitted = results["selector"]["thresholds"]
    out = {"selector_tolerance": fitted["tolerance"],
           "selector_score_threshold": score_threshold_text(fitted["score_threshold"]),
           "selector_validation_to_backup": fitted["validation_to_backup"]}
    if "frontier" not in results:
        return out
    pair = default_pair(results)
    points = {kind: frontier_point(pair, kind)["splits"]["test"]
              for kind in ("default", "primary_only", "backup_only")}
    out["frontier_default_to_backup_pct"] = 100.0 * points["default"]["to_backup"]
    for target, short in (("received_power_dbm", "power"), ("coverage_radius_m", "radius")):
        for kind, at in points.items():
            out[f"frontier_{kind.removesuffix('_only')}_{short}"] = at[target]
        out[f"frontier_default_{short}_over_backup"] = \
            points["default"][target] / points["backup_only"][target]
    return out


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
        "selector_test_to_backup": routing["test"]["to_backup"],
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


def link_variant(answered_by: str) -> str:
    """The latency variant of the Selector's ``predict_array`` on one link that the backbone
    named ``answered_by`` (display name) answers (``frontier.link_latency``)."""
    return f"predict_array, a link the {answered_by} answers"


def latency_numbers(results: dict) -> dict:
    """The latency figures the book's prose pastes (they vary from run to run)."""
    names = model_names()
    mlp, mamba = names[registry.by_role("primary").key], names[registry.by_role("backup").key]

    def timed(model, variant, batch, column, *default):
        return timing(results["latency"], model, variant, batch, column, *default)

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
        "selector_predict_array_rows_per_s": timed("Selector", "predict_array", 4096,
                                                   "rows_per_s"),
        "selector_b1_primary_ms": timed("Selector", link_variant(mlp), 1, "median_ms", None),
        "selector_b1_backup_ms": timed("Selector", link_variant(mamba), 1, "median_ms", None),
        "mamba_predict_array_rows_per_s": timed(mamba, "predict_array", 4096, "rows_per_s"),
        "mlp_network_rows_per_s": timed(mlp, "network, eager", 4096, "rows_per_s"),
        **frontier_speeds(results),
        "lightgbm_predict_b1_ms": timed("LightGBM", "predict", 1, "median_ms"),
        "lightgbm_tuning_min": (results["lightgbm"]["search_s"]
                                + results["lightgbm"]["refit_s"]) / 60.0,
        "torch_threads": results["machine"]["torch_threads"],
    }


def frontier_speeds(results: dict) -> dict:
    """Rows/s at batch 4096 on the test split of the default pair's default point, of its
    primary alone and of its backup alone, and the default point's speed-up over the backup
    (measured: they vary from run to run)."""
    if "frontier" not in results:
        return {}
    pair = default_pair(results)
    speed = {kind: frontier_point(pair, kind)["splits"]["test"]["rows_per_s"]
             for kind in ("default", "primary_only", "backup_only")}
    return {**{f"frontier_{k.removesuffix('_only')}_rows_per_s": v for k, v in speed.items()},
            "frontier_default_over_backup_speed": speed["default"] / speed["backup_only"]}


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
