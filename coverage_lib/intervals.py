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
import pandas as pd
from scipy import stats

from . import evaluation, paths, registry, replicates, tables
from .dataset import TARGETS

FORMAT = "d2tl-coverage-seeds/2"
# What each replicate's results keep in seeds.json (per seed, for the replicates on every row):
# the book's tables of accuracy, frequency bands, routing and physics rules become mean ±
# half-width of these.
PER_SEED = ("accuracy", "frequency_bands", "routing", "physics", "training")
# The learning curves' three panels: (label, target, statistic).
CURVES = (("received power vs median (dB)", "received_power_dbm", "mae_vs_median"),
          ("radius R²", "coverage_radius_m", "r2"),
          ("QoS vs QoS(median SINR)", "qos_score", "mae_vs_median"))


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
            results = evaluation.read_results(data_dir)
            results = {**results, "seed": 0,
                       "train_rows": results["lightgbm"]["chosen"][TARGETS[0]]["train_rows"]}
        else:
            results = evaluation.read_replicate(folder / "results" / "replicate.json")
        out[replicate.name] = {"seed": replicate.seed, "size": replicate.train_rows,
                               **{k: results[k] for k in ("train_rows", *PER_SEED)}}
    return out


def value(entry: dict, target: str, stat: str = "noise_free"):
    """One model's statistic on one target: ``noise_free`` (``evaluation.noise_free_mae``) or a
    stored one ("mae", "r2", "mae_vs_median")."""
    if stat == "noise_free":
        return evaluation.noise_free_mae(entry, target)
    return entry[target].get(stat)


def _models(runs: dict) -> list[str]:
    first = next(iter(runs.values()))["accuracy"]["test"]
    return [m for m in evaluation.model_keys() if m in first and m != "oracle"]


def _splits(runs: dict) -> list[str]:
    """The evaluation splits, in the book's order (test first)."""
    held = next(iter(runs.values()))["accuracy"]
    return [s for s in evaluation.EVAL_SPLITS if s in held]


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
    out.append(("Selector / better backbone", "selector", "better"))
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
    return evaluation.write_json(paths.resolve(data_dir) / "results" / "seeds.json", result)


def read(data_dir) -> dict:
    """``<data_dir>/results/seeds.json``; missing or of another format → ValueError naming it."""
    return evaluation.read_json(paths.resolve(data_dir) / "results" / "seeds.json", FORMAT,
                                "a D2TL Coverage seeds file", "run the seeds stage (notebook "
                                "04b_seeds) first")


# -- what the book shows ---------------------------------------------------------------------

def shown(iv: dict, decimals: int) -> str:
    """An interval as "mean ± half-width" with ``decimals`` (the mean alone without one)."""
    return "–" if iv["mean"] is None else tables.with_half(iv["mean"], iv["half_width"], decimals)


def accuracy_table(result: dict, splits=None) -> pd.DataFrame:
    """Noise-free error, mean ± half-width of the interval: a row per split (all of them
    unless ``splits`` names some) and model, a column per target (with its unit)."""
    names = evaluation.model_names()
    splits = list(result["accuracy"]) if splits is None else list(splits)
    rows = [(s, m) for s in splits for m in result["accuracy"][s]]
    columns = [f"{tables.NAMES[t]} ({tables.ERROR_UNITS[t]})" for t in TARGETS]
    return pd.DataFrame([[shown(result["accuracy"][s][m][t], tables.ERROR_DECIMALS[t])
                          for t in TARGETS] for s, m in rows], columns=columns,
                        index=pd.MultiIndex.from_tuples([(s, names[m]) for s, m in rows],
                                                        names=["split", "model"]))


def ratio_table(result: dict) -> pd.DataFrame:
    """A row per comparison and split: the ratio on the target where it is highest on average
    (the first model's worst), mean ± half-width, and its verdict."""
    rows, index = [], []
    for label, by_split in result["ratios"].items():
        for split, by_target in by_split.items():
            target = max(TARGETS, key=lambda t: -math.inf if by_target[t]["mean"] is None
                         else by_target[t]["mean"])
            iv = by_target[target]
            rows.append([f"{shown(iv, 3)} ({tables.NAMES[target]})", ratio_verdict(iv)])
            index.append((label, split))
    return pd.DataFrame(rows, columns=["ratio (worst target)", "verdict"],
                        index=pd.MultiIndex.from_tuples(index, names=["comparison", "split"]))


def claims(result: dict) -> list[str]:
    """One sentence per comparison on the test split, worded from the intervals."""
    out = []
    for label, by_split in result["ratios"].items():
        test = by_split["test"]
        verdicts = {t: ratio_verdict(test[t]) for t in TARGETS}
        lower = [tables.NAMES[t] for t, v in verdicts.items() if v == "lower"]
        higher = [tables.NAMES[t] for t, v in verdicts.items() if v == "higher"]
        same = [tables.NAMES[t] for t, v in verdicts.items() if v == "indistinguishable"]
        parts = [f"below 1 on {', '.join(lower)}" if lower else "",
                 f"above 1 on {', '.join(higher)}" if higher else "",
                 f"its interval holds 1 on {', '.join(same)}" if same else ""]
        n = next(iter(test.values()))["n"]
        said = "; ".join(p for p in parts if p) or "known from one seed only"
        out.append(f"{label}, ratio of noise-free errors on the test split ({n} seeds, "
                   f"{round(result['level'] * 100)} % t-interval): {said}.")
    return out


def replicate_table(result: dict) -> pd.DataFrame:
    """A row per replicate (named by its seed and rows): its training rows, and per backbone
    the epochs it ran and its training time (minutes)."""
    rows = {}
    for name, r in result["replicates"].items():
        row = {"training rows": tables.number(r["train_rows"], 0)}
        for key, t in r["training"].items():
            row[registry.get(key).name] = (f"{t['epochs']} epochs, "
                                           f"{tables.number(t['training_time_s'] / 60, 1)} min")
        rows[name] = row
    return pd.DataFrame(rows).T


def goals(result: dict, results: dict) -> list[dict]:
    """The paper's goals judged over the seeds: each goal of accuracy and physics rules
    (``evaluation.goals`` of every seed) with its value on every seed, their mean as ``value``
    with ``half_width``, and ``met`` from the interval: True when all of it is within the
    limit, False when none of it is, None (undecided) when it holds the limit; then the main
    run's (``results``) other goals (serving) as they are. With one seed, the main run's
    goals."""
    per_seed = [evaluation.goals(r["accuracy"], r["physics"])
                for r in result["per_seed"].values()]
    if len(per_seed) < 2:
        return results["goals"]
    out = []
    for rows in zip(*per_seed):
        first = rows[0]
        iv = interval([r["value"] for r in rows], result["level"])
        half = iv["half_width"] if len({r["value"] for r in rows}) > 1 else None
        ends = [evaluation.goal_row(first["goal"], v, first["limit"], first["kind"])["met"]
                for v in (iv["mean"] - (half or 0.0), iv["mean"] + (half or 0.0))]
        out.append({**evaluation.goal_row(first["goal"], iv["mean"], first["limit"],
                                          first["kind"]),
                    "half_width": half, "values": [r["value"] for r in rows],
                    "met": ends[0] if ends[0] == ends[1] else None})
    judged = {g["goal"] for g in out}
    return out + [g for g in results["goals"] if g["goal"] not in judged]


# The glued numbers the book's prose quotes with their interval: name → how each is shown.
QUOTED = {"mlp_power_ratio": "{:.4f}", "mlp_power_vs_median": "{:.3f}",
          "oracle_power_mae": "{:.3f}", "mlp_radius_r2": "{:.5f}",
          "lightgbm_power_vs_median": "{:.3f}", "lightgbm_radius_over_mlp": "{:.2f}",
          "selector_test_to_mamba": "{:.2%}", "selector_test_more_accurate": "{:.2%}"}


def quoted_numbers(result: dict) -> dict:
    """Each of ``QUOTED`` as text, "mean ± half-width" over the seeds (the mean alone with
    one seed), glued as ``<name>_text``: ``evaluation.accuracy_numbers`` of every seed."""
    per_seed = [evaluation.accuracy_numbers(r["accuracy"], r["routing"])
                for r in result["per_seed"].values()]
    out = {}
    for name, form in QUOTED.items():
        iv = interval([n.get(name) for n in per_seed], result["level"])
        if iv["mean"] is None:
            text = "–"
        elif iv["half_width"] is None:
            text = form.format(iv["mean"])
        elif form.endswith("%}"):  # 12.34 ± 0.56 %
            text = f"{form.format(iv['mean'])[:-1]} ± {form.format(iv['half_width'])}"
        else:
            text = f"{form.format(iv['mean'])} ± {form.format(iv['half_width'])}"
        out[f"{name}_text"] = text
    return out


def over_seeds(results: dict, result: dict) -> dict:
    """Everything the book's pages paste that varies from seed to seed (glue name → table,
    text or Markdown), over the seeds of ``result`` (``summary``) where two or more ran, else
    the main run's (``results``, metrics.json): the evaluation's tables
    (``evaluation.book_tables``), the quoted errors (``quoted_numbers``), the goals met
    (``goals``) and the sentences worded from them (``verdicts.stable``)."""
    from . import verdicts

    judged = goals(result, results)
    return {**evaluation.book_tables(results, spread(result), judged),
            **quoted_numbers(result), **verdicts.stable(results, result, judged),
            "goals_met": sum(g["met"] is True for g in judged), "goals_total": len(judged),
            "goals_undecided": sum(g["met"] is None for g in judged)}


def book_values(result: dict) -> dict:
    """What the book's other pages paste from the seeds stage: the claims worded from the
    intervals (Markdown), the number of seeds and the level."""
    seeds = len(result["seeds"])
    claims_md = "\n".join(f"- {c}" for c in claims(result))
    if seeds < 2:
        claims_md = (f"- One seed only: no interval can be given (the profile's `seeds` lists "
                     f"{result['seeds']}).")
    return {"seeds_claims_md": claims_md, "seeds_n": seeds,
            "seeds_level_pct": round(result["level"] * 100)}
