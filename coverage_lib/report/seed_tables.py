"""What the book shows from the seeds: every model's error and the claims' ratios as mean ±
half-width of their intervals (``evaluation.seeds_stage``), the claims in words, the quoted
numbers."""
from __future__ import annotations

import math

import pandas as pd

from ..evaluation import result_files
from . import page_values
from ..models import registry
from . import tables, verdicts
from ..core.schema import TARGETS
from ..evaluation.seeds_stage import goals, interval, ratio_verdict, spread
from .tables import shown


def accuracy_table(result: dict, splits=None) -> pd.DataFrame:
    """Noise-free error, mean ± half-width of the interval: a row per split (all of them
    unless ``splits`` names some) and model, a column per target (with its unit)."""
    names = result_files.model_names()
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


# The glued numbers the book's prose quotes with their interval: name → how each is shown.
QUOTED = {"mlp_power_ratio": "{:.4f}", "mlp_power_vs_median": "{:.3f}",
          "oracle_power_mae": "{:.3f}", "mlp_radius_r2": "{:.5f}",
          "lightgbm_power_vs_median": "{:.3f}", "lightgbm_radius_over_mlp": "{:.2f}",
          "selector_test_to_backup": "{:.2%}", "selector_test_low_confidence": "{:.2%}"}


def quoted_numbers(result: dict) -> dict:
    """Each of ``QUOTED`` as text, "mean ± half-width" over the seeds (the mean alone with
    one seed), glued as ``<name>_text``: ``page_values.accuracy_numbers`` of every seed."""
    per_seed = [page_values.accuracy_numbers(r["accuracy"], r["routing"])
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


# ``page_values.book_tables``' tables of a statistic per target with a column per model: on the
# book's pages a row per model, the targets as columns (the seeds page's layout: with seeds,
# each cell is "mean ± half-width", and five or six models side by side do not fit the page).
BY_MODEL = ("table_test_mae", "table_test_vs_median", "table_test_r2", "table_ood_mae",
            "table_noise_free", "table_bands")


def models_as_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A table with a row per target (or per target within each block of rows: a split, a
    band) and a column per model, turned: a row per model (within each block, in the columns'
    order) and a column per target (in the rows' order). A model with no value in a block
    ("–" in every cell) is left out of it."""
    if table.index.nlevels == 1:
        out = table.T.copy()
    else:
        cells = {(i, c): v for i, row in zip(table.index, table.itertuples(index=False))
                 for c, v in zip(table.columns, row)}
        blocks = list(dict.fromkeys(i[:-1] for i in table.index))
        targets = list(dict.fromkeys(i[-1] for i in table.index))
        rows = {(*b, m): [cells.get(((*b, t), m), "–") for t in targets]
                for b in blocks for m in table.columns}
        out = pd.DataFrame(list(rows.values()), columns=targets,
                           index=pd.MultiIndex.from_tuples(list(rows)))
    return tables.unnamed(out[~(out == "–").all(axis=1)])


def over_seeds(results: dict, result: dict) -> dict:
    """Everything the book's pages paste that varies from seed to seed (glue name → table,
    text or Markdown), over the seeds of ``result`` (``summary``) where two or more ran, else
    the main run's (``results``, metrics.json): the evaluation's tables
    (``page_values.book_tables``, those of ``BY_MODEL`` with a row per model:
    ``models_as_rows``), the quoted errors (``quoted_numbers``), the goals met (``goals``) and
    the sentences worded from them (``verdicts.stable``)."""

    judged = goals(result, results)
    shown = page_values.book_tables(results, spread(result), judged)
    return {**{name: models_as_rows(t) if name in BY_MODEL else t for name, t in shown.items()},
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


def budget_table(verdicts: dict) -> pd.DataFrame:
    """``seeds_stage.budget_verdicts`` as a table, a row per backbone: the epochs of this budget
    and of the earlier one, and per target the test error over seeds now and then (mean ±
    half-width) with the verdict."""
    units = {"received_power_dbm": ("received power vs median", "dB", 3),
             "coverage_radius_m": ("radius MAE", "m", 1)}
    rows = {}
    for key, entry in verdicts.items():
        row = {"epochs (earlier → now)":
               f"{entry['earlier_epochs']} → {', '.join(map(str, entry['epochs'])) or '–'}"}
        for target, (label, unit, d) in units.items():
            v = entry[target]
            row[f"{label} now [{unit}]"] = shown(v, d)
            row[f"earlier [{unit}]"] = shown({"mean": v["earlier_mean"],
                                              "half_width": v["earlier_half_width"]}, d)
            row[f"{label}: verdict"] = v["verdict"] or "–"
        rows[registry.get(key).name] = row
    return pd.DataFrame(rows).T

