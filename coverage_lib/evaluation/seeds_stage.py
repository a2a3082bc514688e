"""Error bars over seeds: every model's error as mean ± a 95 % t-interval, the ratios the book's
claims rest on with their intervals, and the learning curves (``results/seeds.json``).

The replicates (``replicates``) differ in the split, the initialisation, the batch order and
LightGBM's seed. With n seeds the interval is the Student t-interval of the mean,
mean ± t(1 − (1 − level)/2, n − 1) · s/√n (s the sample standard deviation): it assumes the
per-seed values are roughly normal, which a bootstrap over three values could not check either.
A ratio of two models is taken per seed (both trained on that seed's split) and its interval
is the t-interval of those per-seed ratios: a paired comparison. A claim is worded from the
interval: "lower" or "higher" only when the interval of the ratio excludes 1
(``ratio_verdict``).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..core import io
from . import paper_goals, result_files
from ..core import paths, validation
from ..models import registry
from ..datasets import replicates
from ..core.schema import TARGETS

FORMAT = "d2tl-coverage-seeds/3"  # 3: the replicates' routing by role (to_primary, to_backup)
# What each replicate's results keep in seeds.json (per seed, for the replicates on every row):
# the book's tables of accuracy, frequency bands, routing and physics rules become mean ±
# half-width of these.
PER_SEED = ("accuracy", "frequency_bands", "routing", "physics", "training")
# The learning curves' three panels: (label, target, statistic).
CURVES = (("received power vs median (dB)", "received_power_dbm", "mae_vs_median"),
          ("radius R²", "coverage_radius_m", "r2"),
          ("QoS vs QoS(median SINR)", "qos_score", "mae_vs_median"))


def seeds(name, v):
    """The seeds of the replicate runs: distinct non-negative integers, 0 (the main run)
    among them."""
    validation.list_of(validation.non_negative_int)(name, v)
    if 0 not in v or len(set(v)) != len(v):
        raise ValueError(f"{name} must be distinct seeds including 0 (the main run); got {v!r}")


# The seeds stage's parameters (notebooks/04b_seeds.ipynb), each with its rule; the pipeline's
# replicate chains follow them.
REFERENCE_TARGETS = ("received_power_dbm", "coverage_radius_m")


def budget_reference(name, v):
    """{backbone key: {"epochs": n, target: [mean, half-width]}} for the targets of
    ``REFERENCE_TARGETS``: the test errors of an earlier training budget over seeds, which the
    profile's budget is judged against (``budget_verdicts``); {} for none."""
    if not isinstance(v, dict):
        raise ValueError(f"{name} must map backbone keys to their earlier budget; got {v!r}")
    for key, entry in v.items():
        if key not in registry.BACKBONES:
            raise ValueError(f"{name}: unknown backbone {key!r}; registered: "
                             f"{sorted(registry.BACKBONES)}")
        if not isinstance(entry, dict) or set(entry) != {"epochs", *REFERENCE_TARGETS}:
            raise ValueError(f"{name}[{key!r}] must have exactly epochs and "
                             f"{', '.join(REFERENCE_TARGETS)}; got {entry!r}")
        validation.positive_int(f"{name}[{key!r}].epochs", entry["epochs"])
        for target in REFERENCE_TARGETS:
            pair = entry[target]
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                            for x in pair)):
                raise ValueError(f"{name}[{key!r}].{target} must be [mean, half-width], two "
                                 f"non-negative numbers; got {pair!r}")


PARAMETERS = {
    "seeds": seeds,
    "train_rows": validation.list_of(validation.positive_int, empty=True),
    "max_epoch_factor": validation.at_least_one,
    "level": validation.quantile_open,
    "chain_threads": validation.positive_int,
    "budget_reference": budget_reference,
}


def budget_verdicts(result: dict, reference: dict) -> dict:
    """{backbone: {"epochs", "earlier_epochs", target: {"mean", "half_width", "earlier_mean",
    "earlier_half_width", "verdict"}}}: each backbone's test error over the seeds (every row)
    against ``reference`` (``budget_reference``): "better" below the earlier interval, "within"
    it, "worse" above it (judged on the mean)."""
    out = {}
    per_seed = [r for r in result["replicates"].values() if r["train_rows"] ==
                max(x["train_rows"] for x in result["replicates"].values())]
    for key, earlier in reference.items():
        epochs = sorted({r["training"][key]["epochs"] for r in per_seed if key in r["training"]})
        entry = {"epochs": epochs, "earlier_epochs": earlier["epochs"]}
        for target in REFERENCE_TARGETS:
            now = result["accuracy"]["test"][key][target]
            mean, half = earlier[target]
            verdict = None if now["mean"] is None else (
                "better" if now["mean"] < mean - half else
                "within" if now["mean"] <= mean + half else "worse")
            entry[target] = {"mean": now["mean"], "half_width": now["half_width"],
                             "earlier_mean": mean, "earlier_half_width": half,
                             "verdict": verdict}
        out[key] = entry
    return out


def interval(values, level: float = 0.95) -> dict:
    """{"mean", "low", "high", "half_width", "n", "values"} of ``values`` (None and NaN
    dropped): the t-interval of the mean; with one value the interval is that value, with
    half-width None (nothing is known of the spread)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return {"mean": None, "low": None, "high": None, "half_width": None, "n": 0,
                "values": []}
    mean = float(v.mean())
    if len(v) == 1:
        return {"mean": mean, "low": mean, "high": mean, "half_width": None, "n": 1,
                "values": v.tolist()}
    half = float(stats.t.ppf(1 - (1 - level) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half,
            "n": int(len(v)), "values": v.tolist()}


def load(data_dir, seeds, train_rows) -> dict:
    """{replicate name: its results} of every replicate: the main run's metrics.json for
    seed 0 with every row, each chain's replicate.json for the others. A missing one →
    ValueError naming it."""
    out = {}
    for replicate in replicates.replicates(seeds, train_rows):
        folder = paths.resolve(replicate.data_dir(str(data_dir)))
        if replicate.is_main:
            results = result_files.read_results(data_dir)
            results = {**results, "seed": 0,
                       "train_rows": results["lightgbm"]["chosen"][TARGETS[0]]["train_rows"]}
        else:
            results = result_files.read_replicate(folder / "results" / "replicate.json")
        out[replicate.name] = {"seed": replicate.seed, "size": replicate.train_rows,
                               **{k: results[k] for k in ("train_rows", *PER_SEED)}}
    return out


def value(entry: dict, target: str, stat: str = "noise_free"):
    """One model's statistic on one target: ``noise_free`` (``paper_goals.noise_free_mae``) or a
    stored one ("mae", "r2", "mae_vs_median")."""
    if stat == "noise_free":
        return paper_goals.noise_free_mae(entry, target)
    return entry[target].get(stat)


def _models(runs: dict) -> list[str]:
    first = next(iter(runs.values()))["accuracy"]["test"]
    return [m for m in result_files.model_keys() if m in first and m != "oracle"]


def _splits(runs: dict) -> list[str]:
    """The evaluation splits, in the book's order (test first)."""
    held = next(iter(runs.values()))["accuracy"]
    return [s for s in result_files.EVAL_SPLITS if s in held]


def accuracy(runs: dict, level: float = 0.95) -> dict:
    """{split: {model: {target: interval}}} of the noise-free error over the replicates that
    train on every row (one per seed)."""
    full = [r for r in runs.values() if r["size"] is None]
    splits = _splits(runs)
    return {split: {m: {t: interval([value(r["accuracy"][split][m], t) for r in full], level)
                        for t in TARGETS} for m in _models(runs)} for split in splits}


def ratio(runs: dict, split: str, model: str, over: str, target: str,
          level: float = 0.95) -> dict:
    """The t-interval of model / over (noise-free error) over the seeds, paired per seed;
    ``over`` may be "better" (the better of the primary and the backup on that seed)."""
    primary, backup = registry.by_role("primary").key, registry.by_role("backup").key
    values = []
    for r in runs.values():
        if r["size"] is not None:
            continue
        acc = r["accuracy"][split]
        below = min(value(acc[primary], target), value(acc[backup], target)) \
            if over == "better" else value(acc[over], target)
        values.append(value(acc[model], target) / below if below else None)
    return interval(values, level)


def comparisons() -> list[tuple[str, str, str]]:
    """(label, model, over) of the ratios the book's claims rest on."""
    primary, backup = registry.by_role("primary"), registry.by_role("backup")
    out = [(f"{primary.name} / LightGBM", primary.key, "lightgbm"),
           (f"{backup.name} / {primary.name}", backup.key, primary.key)]
    out += [(f"{b.name} / {backup.name}", b.key, backup.key)
            for b in registry.BACKBONES.values() if not b.role]
    out.append((f"Selector / {backup.name}", "selector", backup.key))
    return out


def ratios(runs: dict, level: float = 0.95) -> dict:
    """{label: {split: {target: interval}}} of every comparison on every split."""
    splits = _splits(runs)
    return {label: {s: {t: ratio(runs, s, m, over, t, level) for t in TARGETS} for s in splits}
            for label, m, over in comparisons()}


def ratio_verdict(iv: dict) -> str:
    """"lower", "higher" or "indistinguishable" (the interval holds 1) of a ratio's interval;
    "one seed only" when there is no interval."""
    if iv["half_width"] is None:
        return "one seed only"
    if iv["high"] < 1:
        return "lower"
    if iv["low"] > 1:
        return "higher"
    return "indistinguishable"


def learning_curves(runs: dict, level: float = 0.95) -> dict:
    """{panel label: {model: [{"rows", interval}...]}} on the test split, per training size
    (every row as its own size), for every model and the oracle floor."""
    sizes = sorted({r["train_rows"] for r in runs.values() if r["size"] is not None} |
                   {max(r["train_rows"] for r in runs.values())})
    out = {}
    for label, target, stat in CURVES:
        panel = {}
        for model in ["oracle", *_models(runs)]:
            points = []
            for size in sizes:
                at = [r for r in runs.values() if r["train_rows"] == size]
                iv = interval([value(r["accuracy"]["test"][model], target, stat) for r in at],
                              level)
                points.append({"rows": int(size), **iv})
            panel[model] = points
        out[label] = panel
    return out


def summary(data_dir, seeds, train_rows, level: float = 0.95) -> dict:
    """Everything ``results/seeds.json`` holds: the replicates, the accuracy and ratio
    intervals, the learning curves and the per-seed training."""
    runs = load(data_dir, seeds, train_rows)
    return {"format": FORMAT, "level": level, "interval": "Student t, over seeds",
            "seeds": list(seeds), "train_rows": list(train_rows),
            "replicates": {n: {"seed": r["seed"], "train_rows": r["train_rows"],
                               "training": r["training"]} for n, r in runs.items()},
            "accuracy": accuracy(runs, level), "ratios": ratios(runs, level),
            "learning_curves": learning_curves(runs, level),
            "per_seed": {str(r["seed"]): {k: r[k] for k in PER_SEED if k != "training"}
                         for r in runs.values() if r["size"] is None}}


def _over(trees: list, reduce, constant):
    """``reduce`` applied leaf by leaf over trees of the same shape (nested dicts of numbers),
    on the keys every tree has; a leaf equal in every tree (a count such as rows, an error
    that is 0 by definition) is ``constant(leaf)``, text stays as it is in the first tree."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _over([t[k] for t in trees], reduce, constant) for k in first
                if all(isinstance(t, dict) and k in t for t in trees)}
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    if all(t == first for t in trees):
        return constant(first)
    return reduce([t if isinstance(t, (int, float)) else None for t in trees])


def seed_accuracies(result: dict | None, accuracy: dict) -> tuple[list[dict], float]:
    """(the ``accuracy`` of every seed in ``result`` (``summary``) where two or more ran, else
    ``[accuracy]``, the main run's alone; the interval's level, 0.95 without ``result``)."""
    runs = [r["accuracy"] for r in (result or {}).get("per_seed", {}).values()]
    return (runs if len(runs) >= 2 else [accuracy]), (result or {}).get("level", 0.95)


def spread(result: dict) -> dict:
    """The per-seed results of ``result`` (``summary``) reduced leaf by leaf: ``mean`` and
    ``half`` (the half-width of the t-interval at ``result["level"]``; None with one seed and
    for a value that does not vary, a count staying a count) are shaped as metrics.json's
    ``accuracy``, ``frequency_bands``, ``routing`` and ``physics``, so the evaluation's tables
    can be built from either; ``n`` is the number of seeds."""
    runs = list(result["per_seed"].values())
    level = result["level"]
    return {"n": len(runs),
            "mean": _over(runs, lambda v: interval(v, level)["mean"], lambda v: v),
            "half": _over(runs, lambda v: interval(v, level)["half_width"],
                          lambda v: v if isinstance(v, int) else None)}


def write(data_dir, result: dict):
    """``result`` (``summary``) as ``<data_dir>/results/seeds.json``, atomically."""
    return io.write_json(paths.resolve(data_dir) / "results" / "seeds.json", result)


def read(data_dir) -> dict:
    """``<data_dir>/results/seeds.json``; missing or of another format → ValueError naming it."""
    return io.read_json(paths.resolve(data_dir) / "results" / "seeds.json", FORMAT,
                        "a D2TL Coverage seeds file", "run the seeds stage (notebook "
                        "04b_seeds) first")


# -- what the book shows ---------------------------------------------------------------------

def goals(result: dict, results: dict) -> list[dict]:
    """The paper's goals judged over the seeds: each goal of accuracy and physics rules
    (``paper_goals.goals`` of every seed) with its value on every seed, their mean as ``value``
    with ``half_width``, and ``met`` from the interval: True when all of it is within the
    limit, False when none of it is, None (undecided) when it holds the limit; then the main
    run's (``results``) other goals (serving) as they are. With one seed, the main run's
    goals."""
    per_seed = [paper_goals.goals(r["accuracy"], r["physics"], r.get("frequency_bands"))
                for r in result["per_seed"].values()]
    if len(per_seed) < 2:
        return results["goals"]
    out = []
    for rows in zip(*per_seed):
        first = rows[0]
        iv = interval([r["value"] for r in rows], result["level"])
        half = iv["half_width"] if len({r["value"] for r in rows}) > 1 else None
        ends = [paper_goals.goal_row(first["goal"], v, first["limit"], first["kind"])["met"]
                for v in (iv["mean"] - (half or 0.0), iv["mean"] + (half or 0.0))]
        out.append({**paper_goals.goal_row(first["goal"], iv["mean"], first["limit"],
                                          first["kind"]),
                    "half_width": half, "values": [r["value"] for r in rows],
                    "met": ends[0] if ends[0] == ends[1] else None})
    judged = {g["goal"] for g in out}
    return out + [g for g in results["goals"] if g["goal"] not in judged]

