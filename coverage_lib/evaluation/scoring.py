"""Every model on every split, scored: the models a finished evaluation loaded (``Models``,
``load_models``), their answers on a split with the Selector's routing (``predictions``), what
an evaluation reads (``evaluation_splits``), and what it records of them: accuracy, routing and
frequency bands (``accuracy_of``, ``routing_entry``), the physics rules (``rule_checks``), the
training (``training_summary``); ``one_link`` compares the models on one link. The evaluation
stage (``runner``) and the notebooks that read a finished run use them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from ..core import paths, schema
from ..core.schema import FEATURES, TARGETS
from ..datasets import dataset
from ..models import registry
from ..models.baselines import LightGBMBaseline
from ..physics import rules, sampling
from ..physics.oracle import oracle_predictions
from ..training import checkpoint_io
from .paper_goals import frequency_bands, noise_free_metrics
from .result_files import BAND_SPLITS, EVAL_SPLITS, model_names
from .selector import REASONS, Selector, routes, routing_summary


def routing_entry(flags: pd.DataFrame) -> dict:
    """The Selector's routing on a split as JSON: fractions to each backbone and per reason
    (``selector.routing_summary`` of ``route``'s flags)."""
    summary = routing_summary(flags)
    n = max(len(flags), 1)
    primary, backup = routes()
    return {"rows": int(len(flags)), "to_primary": float(summary.loc[(primary, ""), "fraction"]),
            "to_backup": float(summary.loc[backup, "rows"].sum() / n),
            "backup_rows": int(summary.loc[backup, "rows"].sum()),
            "reasons": {r: float(summary.loc[(backup, r), "fraction"]) for r in REASONS}}


def training_summary(models: dict, histories: dict) -> dict:
    """{backbone: parameters, epochs run, best epoch, training time, still improving, why it
    stopped, converged} from the loaded models ({key: model}) and their training histories.
    Converged: stopped by the patience (``trainer``), not by the epoch ceiling."""
    return {k: {"parameters": int(models[k].n_parameters), "epochs": len(h["val_mae"]),
                "best_epoch": int(h["best_epoch"]),
                "training_time_s": float(sum(h["epoch_time_s"])),
                "still_improving": bool(h["best_epoch"] == len(h["val_mae"])),
                "stopped": h.get("stopped", "ceiling"),
                "converged": h.get("stopped") == "patience"}
            for k, h in histories.items() if k in models}


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
    manifest = dataset.identity(data)
    primary, backup = registry.by_role("primary"), registry.by_role("backup")
    results = paths.resolve(data_dir) / "results"
    selector = Selector.from_checkpoints(
        primary.checkpoint_path(data_dir), backup.checkpoint_path(data_dir),
        data_manifest_sha256=manifest,
        thresholds_path=results / "selector_thresholds.json" if thresholds else None)
    backbones = {}
    for key, backbone in registry.BACKBONES.items():
        backbones[key] = {primary.key: selector.primary, backup.key: selector.backup}.get(key) or \
            checkpoint_io.load_checkpoint(backbone.checkpoint_path(data_dir), manifest)["model"]
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
    out = {"oracle": oracle_predictions(frame, implementation_gap_db)} if oracle else {}
    if models.lightgbm is not None:
        out["lightgbm"] = models.lightgbm.predict(features)
    for key, model in models.backbones.items():
        out[key] = {primary: mlp_pred, backup: mamba_pred}.get(key)
        if out[key] is None:
            out[key] = model.predict(features)
    out["selector"] = selector.combine(mlp_pred, mamba_pred, flags)
    return out, flags


def evaluation_splits(data, scored=EVAL_SPLITS) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What an evaluation reads from the data set folder ``data``: the train split's features
    and targets (LightGBM's fit), the whole validation split and the ``scored`` splits (the
    test split and every OOD set unless told)."""
    return (dataset.load_split(data, "train", schema.MODEL_COLUMNS),
            dataset.load_split(data, "val"),
            {split: dataset.load_split(data, split) for split in scored})


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
    """{set: {model: {rule: check}}}: the physics rules (``physics.rules.check``) of the
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
