"""The book's sentences that compare models or judge the paper's claim, worded from the numbers.

No comparison in the book is typed: "better", "worse", "met" and "not met" come from here, from
``metrics.json``. Two errors within ``TIE`` (relative) of each other are worded "as accurate
as"; otherwise the lower one is "better". Each function returns Markdown (CommonMark: bold,
lists), which notebook 05 glues for the book's pages.
"""
from __future__ import annotations

import math

from ..models import registry
from . import page_values, tables
from ..core.schema import OOD_SPLITS
from ..evaluation import seeds_stage, result_files
from ..evaluation import paper_goals
from ..evaluation.paper_goals import noise_free_mae, timing

TIE = 0.02
# The paper's claim, part by part, and the goals (``paper_goals.goals``) that test each part.
CLAIMS = (
    ("The primary model (the MLP) answers in-distribution links at the noise floor and is more "
     "accurate than a tuned gradient-boosting baseline", ("MLP ",)),
    ("The physics backup (the Mamba-3 with its law head) stays accurate beyond the training "
     "distances and rain rates and never breaks a monotonicity rule", ("backup ",)),
    ("The Selector, a cascade, answers in-distribution links with the MLP where it can and "
     "sends the rest to the backup: on the test split as accurate as the backup within its "
     "tolerance, out of distribution as accurate as the backup", ("Selector ",)),
)
# The first page's table of the claim: each part in a few words, and the goals it is read by
# first (name prefixes; of several goals under one prefix, the one nearest its limit), after
# any goal it missed or left undecided; keyed by the part's first prefix in ``CLAIMS``.
CLAIM_ROWS = {
    "MLP ": ("**Primary**: the MLP at the noise floor, more accurate than LightGBM",
             ("MLP received power test MAE vs the median", "MLP test MAE / LightGBM test MAE")),
    "backup ": ("**Physics backup**: accurate beyond the training distances and rain rates, "
                "never breaking a monotonicity rule",
                ("backup / MLP received power vs median on ood_multiple",
                 "backup / MLP radius MAE on ood_multiple")),
    "Selector ": ("**Selector**: the MLP where it can, otherwise the backup, as accurate as "
                  "the backup", ("Selector test MAE / backup test MAE",)),
}
FIGURES_PER_CLAIM = 3
SPLIT_MEANINGS = {"test": "held-out links inside the training ranges",
                  "ood_frequency": "frequencies beyond the training range",
                  "ood_rain": "rain rates beyond the training range",
                  "ood_distance": "distances beyond the training range",
                  "ood_multiple": "several features beyond their training ranges at once"}


def comparison(name: str, value: float, other: str, reference: float) -> str:
    """'the backup is better' / 'worse' / 'as accurate as the MLP' for two errors."""
    if abs(value - reference) <= TIE * max(abs(value), abs(reference)):
        return f"{name} is as accurate as {other}"
    return f"{name} is {'better' if value < reference else 'worse'} than {other}"


def _goal_words(goal: dict) -> str:
    sign = "≤" if goal["kind"] == "max" else "≥"
    value = goal["value"]
    shown = tables.with_half(int(value) if float(value).is_integer() else value,
                             goal.get("half_width"), 4)
    return f"{goal['goal']}: {shown} (goal {sign} {goal['limit']:g})"


def claim_parts(goals: list) -> list[tuple]:
    """(claim, tested, missed, undecided) per part of the claim (``CLAIMS``) that ``goals``
    test: the goals testing it, those not met and those undecided (``met`` None)."""
    out = []
    for claim, prefixes in CLAIMS:
        tested = [g for g in goals if g["goal"].startswith(prefixes)]
        if tested:
            out.append((claim, tested, [g for g in tested if g["met"] is False],
                        [g for g in tested if g["met"] is None]))
    return out


def claim_verdict(goals: list) -> str:
    """One bullet per part of the claim (``CLAIMS``): met when every goal testing it is met,
    with the missed goals and their measured values; then the count of all goals. Goals
    judged over seeds (``seeds_stage.goals``) may be undecided (``met`` None: the interval holds
    the limit): a part with no missed goal but an undecided one is undecided."""
    lines = []
    for claim, tested, missed, open_ in claim_parts(goals):
        held = len(tested) - len(missed) - len(open_)
        if not missed and not open_:
            verdict = f"**met**: all {len(tested)} of its goals hold."
        else:
            verdict = (f"**{'not met' if missed else 'undecided'}**: {held} of {len(tested)} "
                       f"goals hold")
            verdict += "".join(f"; {what}: " + "; ".join(_goal_words(g) for g in found)
                               for what, found in (("missed", missed), ("undecided", open_))
                               if found) + "."
        lines.append(f"- *{claim}* — {verdict}")
    met = sum(g["met"] is True for g in goals)
    undecided = sum(g["met"] is None for g in goals)
    lines.append(f"- In all, {met} of the {len(goals)} goals are met"
                 + (f" and {undecided} undecided." if undecided else "."))
    return "\n".join(lines)


def _significant(mean: float, half: float | None, digits: int = 3, at_least: int = 0) -> str:
    """A value to ``digits`` significant digits (at least ``at_least`` decimals), "±
    half-width" with the same decimals where there is one."""
    d = max(0, digits - 1 - math.floor(math.log10(abs(mean)))) if mean else digits
    return tables.with_half(mean, half, max(d, at_least))


def _goal_figure(goal: dict) -> str:
    """A goal as the claim table quotes it: its name (targets named in words), the measured
    value (± half-width) and its limit."""
    name = goal["goal"]
    for target, words in tables.NAMES.items():
        name = name.replace(f": {target}", f", {words}")
    sign, limit = "≤" if goal["kind"] == "max" else "≥", f"{goal['limit']:g}"
    decimals = len(limit.partition(".")[2]) + 2  # a value near its limit tells from it
    return (f"{name}: {_significant(float(goal['value']), goal.get('half_width'), 3, decimals)}"
            f" (goal {sign}\u00a0{limit})")


def _nearest_limit(found: list) -> dict:
    """Of goals of one kind, the one nearest its limit (the largest share of it for a
    maximum, the smallest for a minimum)."""
    def used(g):
        share = g["value"] / g["limit"] if g["limit"] else g["value"]
        return share if g["kind"] == "max" else -share
    return max(found, key=used)


# The backbones each part of the claim rests on, by registry role.
CLAIM_ROLES = {"MLP ": ("primary",), "backup ": ("backup",), "Selector ": ("primary", "backup")}


def claim_table(goals: list, backup_share: dict | None = None,
                training: dict | None = None) -> str:
    """The claim at a glance (Markdown): a row per part of the claim that ``goals`` test
    (``CLAIM_ROWS``' words), its verdict with the goals that hold, and the figures that decide
    it, one a line: the goals it missed, then those left undecided, then the goals it is read
    by (``CLAIM_ROWS``), at most ``FIGURES_PER_CLAIM`` in all; for the Selector also the share
    of test links it sent to the backup (``backup_share``: an ``seeds_stage.interval`` of
    fractions). With ``training`` (metrics.json's), a part resting on a backbone that did not
    converge says so beside its verdict (``CLAIM_ROLES``)."""
    lines = ["| claim | verdict | deciding figures |", "|---|---|---|"]
    for claim, tested, missed, open_ in claim_parts(goals):
        first = dict(CLAIMS)[claim][0]
        words, headlines = CLAIM_ROWS[first]
        held = len(tested) - len(missed) - len(open_)
        verdict = "not met" if missed else "undecided" if open_ else "met"
        chosen = [*missed, *open_]
        for prefix in headlines:  # a headline already among the missed or undecided: skipped
            found = [g for g in tested if g["goal"].startswith(prefix)]
            if found and not any(g in chosen for g in found):
                chosen.append(_nearest_limit(found))
        shown = [("missed: " if g in missed else "undecided: " if g in open_ else "")
                 + _goal_figure(g) for g in chosen[:FIGURES_PER_CLAIM]]
        if first == "Selector " and backup_share and backup_share["mean"] is not None:
            shown.append("test links sent to the backup: " + _significant(
                100 * backup_share["mean"], backup_share["half_width"] and
                100 * backup_share["half_width"]) + "\u00a0%")
        lines.append(f"| {words} | **{verdict}**: {held} of {len(tested)} goals hold"
                     f"{_unconverged(first, training)} | "
                     + "<br>".join(shown) + " |")  # a figure a line
    return "\n".join(lines)


def _unconverged(part: str, training: dict | None) -> str:
    """", on models that did not converge: <names>" for a part of the claim resting on a
    backbone that stopped at its epoch ceiling (``result_files.converged``); "" otherwise."""
    names = registry.display_names()
    keys = [registry.by_role(role).key for role in CLAIM_ROLES[part]]
    open_ = [names[k] for k in keys if training and k in training
             and not result_files.converged(training[k])]
    return f", on a model that did not converge ({', '.join(open_)})" if open_ else ""


def out_of_distribution(accuracy: dict, seeds: dict | None = None) -> str:
    """Per OOD set, the backup against the MLP on the noise-free received power and radius,
    each comparison worded from its two numbers; with ``seeds`` (``results/seeds.json`` of two
    or more seeds), from the interval of their per-seed ratio (``seeds_stage.ratio_verdict``),
    each error shown as mean ± half-width."""
    mlp, backup = registry.by_role("primary").key, registry.by_role("backup").key
    runs, level = seeds_stage.seed_accuracies(seeds, accuracy)
    lines = []
    for split in OOD_SPLITS:
        if {mlp, backup} <= set(accuracy.get(split, {})):
            parts = []
            for target, what in (("received_power_dbm", "received power against the median"),
                                 ("coverage_radius_m", "coverage radius")):
                errors = {m: [noise_free_mae(r[split][m], target) for r in runs]
                          for m in (backup, mlp)}
                a, b = (seeds_stage.interval(errors[m], level) for m in (backup, mlp))
                unit, d = tables.ERROR_UNITS[target], tables.ERROR_DECIMALS[target]
                if len(runs) == 1:
                    said = comparison("the backup", a["mean"], "the MLP", b["mean"])
                else:
                    said = _from_interval(seeds_stage.ratio_verdict(seeds_stage.interval(
                        [x / y for x, y in zip(errors[backup], errors[mlp])], level)))
                parts.append(f"on {what} {said} ({tables.shown(a, d)} {unit} against "
                             f"{tables.shown(b, d)} {unit})")
            lines.append(f"- **{split}** ({SPLIT_MEANINGS[split]}): " + "; ".join(parts) + ".")
    if len(runs) > 1:
        lines.append(f"- Over {len(runs)} seeds: mean ± half-width of the "
                     f"{round(100 * level)} % t-interval; better or worse only where the "
                     f"interval of the per-seed ratio excludes 1.")
    return "\n".join(lines)


def _from_interval(verdict: str) -> str:
    return {"lower": "the backup is better than the MLP",
            "higher": "the backup is worse than the MLP"}.get(
        verdict, "the backup and the MLP cannot be told apart (their ratio's interval holds 1)")


def switching_costs(physics: dict, splits=("test", "domain")) -> str:
    """What the Selector's switching adds to the physics violations: per rule, the share of
    rows it breaks beyond the more violating of the two backbones alone."""
    mlp, backup = registry.by_role("primary").key, registry.by_role("backup").key
    added = []
    for split in splits:
        found = physics.get(split, {})
        if not {"selector", mlp, backup} <= set(found):
            continue
        for rule, entry in found["selector"].items():
            alone = max(found[mlp][rule]["violation_rate"], found[backup][rule]["violation_rate"])
            if entry["violation_rate"] > alone:
                added.append(f"{rule} on {split}: {100 * entry['violation_rate']:.2f} % of rows "
                             f"against {100 * alone:.2f} % for the worse backbone alone")
    if not added:
        return ("Switching adds no physics violation: on " + " and ".join(splits) + ", the "
                "Selector breaks no rule on more rows than the worse of its two backbones.")
    return "Switching adds physics violations: " + "; ".join(added) + "."


def training_footing(training: dict, tolerance: float = 0.15) -> str:
    """Whether the backbones trained on an equal footing by wall time (each within
    ``tolerance`` of the longest), with their sizes, epochs and times; and which were still
    improving when their epoch cap ended them."""
    names = registry.display_names()
    training = {k: training[k] for k in registry.BACKBONES if k in training}
    times = {k: v["training_time_s"] for k, v in training.items()}
    longest, shortest = max(times.values()), min(times.values())
    runs = "; ".join(f"{names[k]}: {tables.number(v['parameters'])} parameters, "
                     f"{v['epochs']} epochs in {v['training_time_s'] / 60:.1f} min"
                     for k, v in training.items())
    spread = (longest - shortest) / longest
    footing = (f"the shortest took {100 * spread:.0f} % less time than the longest, so the "
               f"comparison is **at equal training wall time** (within "
               f"{100 * tolerance:.0f} %)" if spread <= tolerance else
               f"the shortest took {100 * spread:.0f} % less time than the longest: the "
               f"comparison is **not** at equal wall time")
    unfinished = [names[k] for k, v in training.items() if not result_files.converged(v)]
    ending = (f"Not converged (stopped at the epoch ceiling): {', '.join(unfinished)}; the "
              f"comparison is at equal budget, not at convergence." if unfinished else
              "Every backbone converged: each stopped once its validation MAE had not "
              "improved for the profile's patience, before the epoch ceiling.")
    return f"{runs}: {footing}. {ending}"


def selector_speed(latency_rows: list, routing: dict | None = None) -> str:
    """What the cascade costs in time: its ``predict_array`` rows/s at batch 4096 against the
    MLP network's (eager) and the backup's ``predict_array``, and one link through it where the
    MLP answers and where the backup does; with ``routing`` (metrics.json's), the share of test
    links sent to the backup."""
    names = registry.display_names()
    mlp, backup = names[registry.by_role("primary").key], names[registry.by_role("backup").key]

    def timed(model, variant, batch, column):
        return timing(latency_rows, model, variant, batch, column, None)

    cascade = timed("Selector", "predict_array", 4096, "rows_per_s")
    network = timed(mlp, "network, eager", 4096, "rows_per_s")
    alone = timed(backup, "predict_array", 4096, "rows_per_s")
    share = f" ({100 * routing['test']['to_backup']:.1f} % of the test links)" if routing else ""
    text = (f"The Selector is a cascade: the MLP answers every link it can, and the backup runs "
            f"only on the links a gate sends to it{share}.")
    if None not in (cascade, network, alone):
        text += (f" At batch 4096 its `predict_array` answers {cascade:,.0f} rows/s: "
                 f"{cascade / network:.2f} of the MLP network's own {network:,.0f} rows/s "
                 f"(eager), and {cascade / alone:.1f} times the backup's `predict_array` "
                 f"({alone:,.0f} rows/s).")
    one = {who: timed("Selector", page_values.link_variant(who), 1, "median_ms")
           for who in (mlp, backup)}
    if None not in one.values():
        text += (f" One link through it takes {one[mlp]:.2f} ms where the MLP answers it and "
                 f"{one[backup]:.2f} ms where the backup does.")
    return text


def decisions(results: dict | None = None) -> str:
    """The goals revised with the cascade, one bullet each: what was decided and why; with
    ``results`` (metrics.json's), whether this run's machine judged the bf16 goals."""
    native = ((results or {}).get("serving") or {}).get("bf16_native")
    machine = ("" if native is None else
               " This run's machine has it natively, so they are judged here." if native else
               " This run's machine emulates bf16, so they are not judged here.")
    return "\n".join([
        "- **Past 40 GHz, reported, not required.** The `ood_frequency` set and the rows of "
        "`ood_multiple` above 40 GHz are reported band by band but carry no goal: no training "
        "link lies above 40 GHz, so nothing the models learnt carries the 60 GHz oxygen line "
        "(ITU-R P.676) or the rise of P.838's rain coefficient with frequency. "
        "`ood_multiple` is judged on its rows within the trained band (≤ 40 GHz).",
        "- **\"The Selector below both backbones on two OOD sets\" is dropped.** Every OOD "
        "row lies outside the training domain, and the cascade sends each such row to the "
        "backup by design: out of distribution the Selector is the backup, as accurate as it "
        f"and no more. The goal that replaces it: the Selector within "
        f"{100 * (paper_goals.SELECTOR_OOD_RATIO - 1):.0f} % of the backup on every OOD set.",
        "- **bf16 goals only where bf16 is native** (a CPU with avx512_bf16, or a GPU): "
        "elsewhere bf16 is emulated, and its speed and its cost say nothing of the format." +
        machine])


def stable(results: dict, seeds: dict | None = None, goals: list | None = None) -> dict:
    """The sentences that depend only on the accuracy, physics and goals (glue name →
    Markdown); the out-of-distribution comparison over ``seeds`` where two or more ran, the
    claim (in words and as ``claim_table``, with the share of test links sent to the backup
    over the seeds) from ``goals`` where given (``seeds_stage.goals``), else from the main
    run's."""
    judged = results["goals"] if goals is None else goals
    runs = [r["routing"] for r in (seeds or {}).get("per_seed", {}).values()]
    share = seeds_stage.interval([r["test"]["to_backup"] for r in
                                (runs if len(runs) >= 2 else [results["routing"]])],
                               (seeds or {}).get("level", 0.95)) if "routing" in results else None
    return {"verdict_md": claim_verdict(judged),
            "claim_table_md": claim_table(judged, share, results.get("training")),
            "ood_md": out_of_distribution(results["accuracy"], seeds),
            "switching_md": switching_costs(results["physics"]),
            "decisions_md": decisions(results)}


def of_this_run(results: dict) -> dict:
    """The sentences built on timings, which vary from run to run (glue name → Markdown)."""
    return {"footing_md": training_footing(results["training"]),
            "selector_speed_md": selector_speed(results["latency"], results.get("routing"))}
