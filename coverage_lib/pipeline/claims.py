"""The reproduction page's claim table: each part of the first page's claim with its verdict
here, the command that reproduces it and what that took on this machine (its stages' recorded
wall times: the main run's for seed 0, every chain's too for the verdict over seeds).
"""
from __future__ import annotations

from pathlib import Path

from ..core.paths import resolve
from ..evaluation import seeds_stage, result_files
from ..report import verdicts
from .definitions import EVALUATION_STAGE, data_dir_of, stages
from .pins import verified
from .stamps import recorded_wall

VERDICT_WORDS = {True: "met", False: "not met", None: "undecided"}


def stage_times(data: Path) -> dict:
    """Seconds of recorded stage wall time: "seed0" (the data set, the main run's training and
    its evaluation, in order), "chains" (every replicate chain's stages) and "rest" (the
    seeds, figures and interactive stages)."""
    names = [s.name for s in stages()]
    main = names[:names.index(EVALUATION_STAGE) + 1]
    return {"seed0": recorded_wall(data / "stamps" / f"{n}.json" for n in main),
            "chains": recorded_wall(data.glob("runs/*/stamps/*.json")),
            "rest": recorded_wall(data / "stamps" / f"{n}.json" for n in names if n not in main)}


def _verdicts(goals: list) -> dict:
    """{claim: "met (n of m goals met)" | "not met …" | "undecided …"} (``verdicts.claim_parts``)."""
    return {claim: f"{VERDICT_WORDS[False if missed else None if open_ else True]} "
                   f"({len(tested) - len(missed) - len(open_)} of {len(tested)} goals met)"
            for claim, tested, missed, open_ in verdicts.claim_parts(goals)}


def markdown(profile: str) -> str:
    """The claim table of ``profile``'s finished run (MyST markdown), with the commands."""
    data = resolve(data_dir_of(profile))
    results = result_files.read_metrics(data / "results" / "metrics.json")
    seeds = seeds_stage.read(data) if (data / "results" / "seeds.json").is_file() else None
    over_seeds = seeds_stage.goals(seeds, results) if seeds else results["goals"]
    n_seeds = len(seeds["per_seed"]) if seeds else 1
    t = stage_times(data)
    one = f"`python -m coverage_lib verify --profile {profile} --until {EVALUATION_STAGE}`"
    every = f"`python -m coverage_lib verify --profile {profile}`"
    rows = ["| part of the claim | verdict, seed 0 | verdict over "
            f"{n_seeds} seed(s) |", "|---|---|---|"]
    seed0, seeded = _verdicts(results["goals"]), _verdicts(over_seeds)
    for claim, _ in verdicts.CLAIMS:
        rows.append(f"| {claim} | {seed0.get(claim, '–')} | {seeded.get(claim, '–')} |")
    done = verified(profile)
    total = t["seed0"] + t["chains"] + t["rest"]
    lines = [
        "\n".join(rows), "",
        f"- **Seed 0** (the verdicts of the middle column, and every number the chapters before "
        f"the seeds page print): {one} reruns the data set, the three trainings and the "
        f"evaluation from nothing in `build/verify/{profile}/` and compares every goal with the "
        f"pinned one: {t['seed0'] / 60:.0f} min of stage time on this machine, one stage after "
        f"the other.",
        f"- **Over the seeds** (the last column, the intervals, the learning curves): {every} "
        f"reruns everything, the {len(list(data.glob('runs/*/stamps')))} replicate chains too: "
        f"{total / 60:.0f} min of stage time on this machine ({t['chains'] / 60:.0f} of them in "
        f"the chains), run two at a time on two cores"
        + (f"; its last full verification took {done['wall_s'] / 60:.0f} min of wall time on "
           f"{done['machine']['cpu']} ({done['when']})." if done else "."),
        "- **The book from the pins**: `make paper` on a fresh clone regenerates the data set, "
        "finds every other stage current and builds the book, training nothing.",
    ]
    return "\n".join(lines) + "\n"
