"""The ablation as the book states it: the backup's Mamba-3 encoders against the MLP encoders
under the same law head, over the seeds that train on every row.

- ``table``: a row per split and target: each model's noise-free error (mean ± half-width over
  the seeds), the paired ratio ablation / backup and its verdict for the Mamba-3 encoder. The
  test is the seeds stage's (``seeds_stage.ratio``): the Student t-interval of the per-seed ratio
  of errors (both models of a seed see the same data cut), at the profile's level; "better"
  where the interval lies above 1 (the ablation's error is the larger), "worse" below 1,
  "indistinguishable" where it holds 1. One seed gives no verdict.
- ``sentence``: what the Mamba-3 encoder adds, in one sentence, with whether both models
  converged (``result_files.converged``): a comparison with a model stopped at its epoch
  ceiling says so.
- ``goals``: the backup's goals judged for the backup and, under the same goals and limits,
  for the ablation in its place (``paper_goals.goals`` over the seeds, ``seeds_stage.goals``):
  a goal the backup misses and the ablation meets is said so beside it.
- ``curves``: validation MAE against epoch and against training seconds, every backbone and
  every seed.

Built when a run is published (``pipeline.publishing``) from its finished results only; no
notebook imports this module, so an edit here reruns no stage.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core import figure_style
from ..core.schema import TARGETS
from ..datasets.replicates import replicates
from ..evaluation import seeds_stage, paper_goals, result_files
from ..models import registry
from . import tables

FIGURE = "ablation_curves.png"
# the ratio's verdict (ablation / backup) read for the backup's encoder
FOR_THE_ENCODER = {"lower": "worse", "higher": "better", "indistinguishable": "indistinguishable",
                   "one seed only": "one seed only"}
SPLIT_NAMES = {"test": "test", "ood_frequency": "OOD frequency", "ood_rain": "OOD rain",
               "ood_distance": "OOD distance", "ood_multiple": "OOD multiple"}


def pair() -> tuple:
    """(ablation, backup): the backup (role "backup") and the backbone without a role that
    shares its law head, as the seeds stage compares them (``seeds_stage.comparisons``)."""
    backup = registry.by_role("backup")
    ablations = [b for b in registry.BACKBONES.values() if not b.role]
    if len(ablations) != 1:
        raise ValueError(f"the ablation needs exactly one backbone without a role; found "
                         f"{[b.key for b in ablations]}")
    return ablations[0], backup


def _ratios(seeds: dict) -> dict:
    ablation, backup = pair()
    return seeds["ratios"][f"{ablation.name} / {backup.name}"]


def verdicts(seeds: dict) -> dict:
    """{(split, target): verdict for the backup's encoder} (``FOR_THE_ENCODER``)."""
    return {(split, t): FOR_THE_ENCODER[seeds_stage.ratio_verdict(by_target[t])]
            for split, by_target in _ratios(seeds).items() for t in TARGETS}


def table(seeds: dict) -> pd.DataFrame:
    """A row per split and target: both models' noise-free errors over the seeds, the ratio
    ablation / backup (mean ± half-width) and the verdict for the backup's encoder."""
    ablation, backup = pair()
    found = verdicts(seeds)
    rows, index = [], []
    ratios = _ratios(seeds)
    for split in [s for s in result_files.EVAL_SPLITS if s in ratios]:
        by_target = ratios[split]
        for t in TARGETS:
            decimals = tables.ERROR_DECIMALS[t]
            rows.append([tables.shown(seeds["accuracy"][split][backup.key][t], decimals),
                         tables.shown(seeds["accuracy"][split][ablation.key][t], decimals),
                         tables.shown(by_target[t], 3), found[(split, t)]])
            index.append((SPLIT_NAMES.get(split, split), tables.target_label(t)))
    return pd.DataFrame(rows, columns=[f"{backup.name}", f"{ablation.name}",
                                       f"ratio {ablation.name} / {backup.name}",
                                       "the Mamba-3 encoder is"],
                        index=pd.MultiIndex.from_tuples(index, names=["split", "error"]))


def _unfinished(training: dict) -> list[str]:
    """Names of the two models that did not converge (``result_files.converged``)."""
    return [f"{b.name} (best epoch {training[b.key]['best_epoch']} of "
            f"{training[b.key]['epochs']})" for b in pair()
            if b.key in training and not result_files.converged(training[b.key])]


def sentence(seeds: dict, training: dict) -> str:
    """What the Mamba-3 encoder adds, in one sentence (with the counts behind it and whether
    the comparison stands on models that finished learning)."""
    ablation, backup = pair()
    found = list(verdicts(seeds).values())
    n = next(iter(next(iter(_ratios(seeds).values())).values()))["n"]
    counts = {v: found.count(v) for v in ("better", "worse", "indistinguishable")}
    if n < 2:
        said = ("with one seed there is no interval: this run cannot say what it adds over "
                "the MLP encoders under the same law head")
    else:
        better, worse, same = (counts[v] for v in ("better", "worse", "indistinguishable"))
        net = ("nothing measurable" if not better and not worse else
               "a lower error" if not worse else "no lower error anywhere" if not better
               else "lower errors on some and higher on others")
        said = (f"{net} over the MLP encoders under the same law head: over {n} seeds it is "
                f"better on {better}, worse on {worse} and indistinguishable on {same} of the "
                f"{len(found)} errors (split × target; paired {round(seeds['level'] * 100)} % "
                f"t-interval of the per-seed ratio {ablation.name} / {backup.name})")
    unfinished = _unfinished(training)
    caveat = (f"; read it with the training: {' and '.join(unfinished)} stopped at the epoch "
              f"ceiling before converging, so the comparison may yet move" if unfinished
              else "; both models converged (each stopped by the profile's patience, before "
                   "its epoch ceiling)")
    return f"**What the Mamba-3 encoder adds**: {said}{caveat}."


def _in_place_of_backup(tree, ablation: str, backup: str):
    """A copy of a results tree with the ablation's entries under the backup's key, wherever
    both are (accuracy, physics and frequency bands: split → model → ...)."""
    if not isinstance(tree, dict):
        return tree
    if ablation in tree and backup in tree:
        return {**tree, backup: tree[ablation]}
    return {k: _in_place_of_backup(v, ablation, backup) for k, v in tree.items()}


def goals(seeds: dict, metrics: dict) -> list[tuple[dict, dict]]:
    """(the backup's goal, the same goal for the ablation in its place) for every goal of the
    backup (their text starts with "backup"), over the seeds where two or more ran (else the
    main run's), each judged by the seeds stage's rule (``seeds_stage.goals``)."""
    ablation, backup = pair()
    parts = ("accuracy", "physics", "frequency_bands")
    def swap(tree):
        return _in_place_of_backup(tree, ablation.key, backup.key)

    per_seed = seeds.get("per_seed", {})
    swapped = {**seeds, "per_seed": {s: {**r, **{k: swap(r[k]) for k in parts if k in r}}
                                     for s, r in per_seed.items()}}
    theirs = {**metrics, "goals": paper_goals.goals(swap(metrics.get("accuracy") or {}),
                                                    swap(metrics.get("physics")),
                                                    swap(metrics.get("frequency_bands")))}
    found = {g["goal"]: g for g in seeds_stage.goals(swapped, theirs)}
    return [(g, found[g["goal"]])
            for g in seeds_stage.goals({**seeds, "per_seed": per_seed},
                                     {"goals": [], **metrics})
            if g["goal"].startswith("backup") and g["goal"] in found]


def _sign(goal: dict) -> str:
    """The goal's comparison: "≤" for a maximum, "≥" for a minimum."""
    return "≤" if goal["kind"] == "max" else "≥"


def goals_table(pairs: list) -> pd.DataFrame:
    """A row per goal of the backup: its limit, the backup's value and verdict, the
    ablation's in its place."""
    ablation, backup = pair()

    def judged(g):
        return (f"{tables.with_half(g['value'], g.get('half_width'), 3)} "
                f"({tables.GOAL_VERDICTS[g['met']]})")

    def limit(g):
        return f"{_sign(g)} {tables.number(g['limit'], 2)}"

    return pd.DataFrame([[limit(g), judged(g), judged(a)] for g, a in pairs],
                        columns=["limit", backup.name, f"{ablation.name} in its place"],
                        index=pd.Index([g["goal"] for g, _ in pairs], name="goal"))


def goals_sentence(pairs: list) -> str:
    """The backup's goals it misses or leaves undecided, and which of them the ablation in
    its place meets, in one sentence."""
    ablation, backup = pair()

    def said(g):
        value = tables.with_half(g["value"], g.get("half_width"), 3)
        return f"{g['goal']} {_sign(g)} {g['limit']:g}: {value}"

    missed = [(g, a) for g, a in pairs if g["met"] is not True]
    if not pairs:
        return f"this run judged no goal of {backup.name}."
    if not missed:
        return f"{backup.name} meets all {len(pairs)} of its goals."
    n_missed = sum(g["met"] is False for g, _ in missed)
    met_by = [a for _, a in missed if a["met"] is True]
    return (f"{backup.name} misses {n_missed} and leaves {len(missed) - n_missed} undecided "
            f"of its {len(pairs)} goals ({'; '.join(said(g) for g, _ in missed)}); "
            + (f"{ablation.name} in its place meets {len(met_by)} of them "
               f"({'; '.join(said(a) for a in met_by)})." if met_by
               else f"{ablation.name} in its place meets none of them."))


def _history_paths(data: Path, seeds: list) -> dict:
    """{(backbone key, seed): history file} of the replicates that train on every row."""
    return {(b.key, r.seed): Path(r.data_dir(str(data))) / "models" / b.history
            for r in replicates(seeds, []) for b in registry.BACKBONES.values()}


def curves(data: Path, seeds: list):
    """Validation MAE (normalised) against epoch and against training seconds: a line per
    backbone and seed (the backbone's colour; seed 0 solid, the others dashed)."""
    figure_style.use_style()
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(figure_style.PAGE_WIDTH_IN, 3.0),
                                            sharey=True)
    names = result_files.model_names()
    for (key, seed), path in _history_paths(data, seeds).items():
        if not path.is_file():
            continue
        history = json.loads(path.read_text())
        mae = np.asarray(history["val_mae"], dtype=float)
        seconds = np.cumsum(history.get("epoch_time_s", [np.nan] * len(mae)))
        style = dict(color=registry.get(key).colour, linestyle="-" if seed == 0 else "--",
                     linewidth=1.2, label=f"{names[key]}" if seed == 0 else None)
        by_epoch.plot(np.arange(1, len(mae) + 1), mae, **style)
        by_time.plot(seconds, mae, **style)
    by_epoch.set(xlabel="epoch", ylabel="validation MAE (normalised)", yscale="log")
    by_time.set(xlabel="training seconds (cumulative)")
    by_epoch.legend(title="seed 0 solid, others dashed")
    fig.tight_layout()
    return fig


def write(data: Path, seeds_file: Path, metrics_file: Path, folder: Path) -> dict:
    """The ablation's files for the book under ``folder``: ``ablation.md`` (sentence, figure,
    tables, the test), ``ablation_verdict.md`` (the sentences, for the first page) and
    ``figures/`` + FIGURE.
    Returns {"sentence", "verdicts"}."""
    seeds = json.loads(seeds_file.read_text())
    metrics = result_files.read_metrics(metrics_file)
    said = sentence(seeds, metrics["training"])
    judged = goals(seeds, metrics)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    fig = curves(data, seeds["seeds"])
    fig.savefig(folder / "figures" / FIGURE)
    plt.close(fig)
    ablation, backup = pair()
    text = "\n".join([
        said, "",
        f"```{{figure}} executed/figures/{FIGURE}", ":name: fig-ablation-curves",
        ":width: 100%", "",
        f"Validation MAE (normalised, log scale) of every backbone on every seed that trains "
        f"on all rows, against epoch (left) and against the training's own seconds (right, "
        f"as this machine ran it, beside the other chains).", "```", "",
        tables.markdown(table(seeds), index_names=("split", "error")), "",
        f"Errors are noise-free (against the median for received power, SINR and QoS; the "
        f"noise-free radius and area), mean ± half-width of the {round(seeds['level'] * 100)} % "
        f"t-interval over {len(seeds['seeds'])} seed(s). The ratio is {ablation.name} / "
        f"{backup.name} per seed, paired (both see the seed's data cut); the Mamba-3 encoder "
        f"is *better* where its interval lies above 1, *worse* below 1 and "
        f"*indistinguishable* where it holds 1.", "",
        f"The backup's goals, and the same goals with {ablation.name} in its place (judged "
        f"over the seeds as the first page judges them): {goals_sentence(judged)}", "",
        *([tables.markdown(goals_table(judged), index_names=("goal",)), ""] if judged else [])])
    (folder / "ablation.md").write_text(text)
    (folder / "ablation_verdict.md").write_text(f"{said}\n\n{goals_sentence(judged)}\n")
    return {"sentence": said, "verdicts": verdicts(seeds)}
