"""``verify``: run a profile again from nothing, in a scratch project, and compare what it
gives with the profile's pinned results, claim by claim, by a rule that holds across machines.

The scratch project (``build/verify/<profile>/``) holds copies of the notebooks, the profiles
and the book's pages and no pins, so every stage runs (``python -m coverage_lib run
--cpu-dispatch DISPATCH`` in a process of its own). The claims are the goals the book's first
page judges:

- each goal of the main run (seed 0: ``metrics.json``'s ``goals``);
- each goal judged over the seeds (``seeds_stage.goals`` of ``seeds.json``) and each backbone's
  test error over the seeds (``seeds.json``'s accuracy intervals);
- the serving goals (ratios of timings, which vary from run to run): shown, not compared.

On the machine that pinned, a rerun gives the same bits, so each claim agrees "to the printed
digits": its value to the digits the tables print and its verdict are the pinned ones. On
another CPU numpy and PyTorch pick other SIMD kernels, the last bits differ and training
amplifies that: a claim then agrees "within its interval" when the reproduced value lies in
the interval the pinned seeds give it and its verdict is the pinned one wherever both are
decided (an undecided verdict over seeds, ``met`` None, is not compared). With n pinned seeds
of mean m and sample standard deviation s, the pinned half-width is h = t·s/√n (t the
0.975 quantile of Student's t with n − 1 degrees of freedom; ``seeds_stage.interval``):

- seed 0 is one more draw: x − m has variance σ²(1 + 1/n), so its 95 % prediction interval is
  m ± t·s·√(1 + 1/n) = m ± h·√(n + 1) (``prediction_bounds``);
- a mean over the n new seeds, m′: m′ − m has variance 2σ²/n, so m ± t·s·√(2/n) = m ± h·√2
  (``mean_bounds``; t keeps n − 1 degrees of freedom, a little wider than a pooled 2n − 2).

A claim whose pinned interval is unknown (one seed, or every seed giving the same value) is
judged to the printed digits alone. The seeds differ in their split as well as in their
training, so these intervals are wider than a change of CPU alone calls for: they say the
rerun is a draw the pinned seeds make likely, not that it is the same number.

``--until STAGE`` stops the run there (``04_evaluate``: the main run only, about half the
time); the claims over the seeds are then not checked. A verification that passes, partial
or full, is added to ``pins/<profile>/VERIFIED.json`` (``record``: which pins, when, where, on
which CPU and dispatch, by which commit, in how long, how many claims agreed by which rule),
which the book's first page quotes (``pins.headline``).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..core import machine, validation
from ..core.io import atomic_write_text, sha256_file
from ..core.paths import project_root
from ..core.schema import TARGETS
from ..evaluation import seeds_stage, result_files
from ..evaluation.paper_goals import GOAL_DECIMALS
from ..models import registry
from . import pins
from .dispatch import DISPATCHES
from .definitions import data_dir_of, stage_params, stages
from .provenance import git_state

SCRATCH = "build/verify"
ERROR_DECIMALS = 3  # the book's accuracy tables print errors to three decimals
DIGITS, WITHIN = "printed digits", "within its interval"  # the rules a claim agrees by


def scratch_project(profile: str) -> Path:
    """A fresh ``build/verify/<profile>/``: the notebooks, the profiles and the book's pages
    (the glue names they paste), and no pins or data."""
    src, root = project_root(), project_root() / SCRATCH / profile
    shutil.rmtree(root, ignore_errors=True)
    for folder in ("notebooks", "params"):
        shutil.copytree(src / folder, root / folder)
    (root / "book").mkdir()
    for page in (src / "book").glob("*.md"):
        shutil.copyfile(page, root / "book" / page.name)
    return root


def run_from_scratch(profile: str, root: Path, until: str | None, log=print,
                     dispatch: str = "native") -> float:
    """``python -m coverage_lib run --profile P --cpu-dispatch DISPATCH`` with ``root`` as the
    project, in a process of its own; its wall time in seconds. A failed run → RuntimeError."""
    command = [sys.executable, "-m", "coverage_lib", "run", "--profile", profile,
               *(["--until", until] if until else []), "--cpu-dispatch", dispatch]
    log(f"verify: {' '.join(command[1:])} in {root.relative_to(project_root())}/ (no pins)")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project_root(),
                          env={**os.environ, "COVERAGE_PROJECT_ROOT": str(root)})
    if done.returncode != 0:
        raise RuntimeError(f"the scratch run of {profile!r} failed (exit status "
                           f"{done.returncode}); its output is above")
    return time.perf_counter() - start


def _row(claim: str, pinned, reproduced, rule: str, ok: bool | None, detail: str = "") -> dict:
    return {"claim": claim, "pinned": pinned, "reproduced": reproduced, "rule": rule, "ok": ok,
            "detail": detail}


def _shown(value, decimals: int):
    return None if value is None else round(float(value), decimals)


def _around(centre, half_width, factor: float) -> tuple | None:
    """(low, high) of centre ± half_width·factor; None where either is unknown."""
    if centre is None or half_width is None:
        return None
    return centre - half_width * factor, centre + half_width * factor


def prediction_bounds(over_seeds: list) -> dict:
    """{goal: (low, high)}: the 95 % prediction interval of one more seed's value, m ± h·√(n + 1)
    (module docstring), of each goal judged over n pinned seeds (``seeds_stage.goals``) whose
    half-width h is known."""
    out = {}
    for g in over_seeds:
        n = sum(v is not None and math.isfinite(v) for v in g.get("values", []))
        found = _around(g["value"], g.get("half_width"), math.sqrt(n + 1))
        if found is not None:
            out[g["goal"]] = found
    return out


def mean_bounds(over_seeds: list) -> dict:
    """{goal: (low, high)}: where the mean of as many new seeds lies, m ± h·√2 (module
    docstring), of each goal judged over the pinned seeds whose half-width h is known."""
    found = {g["goal"]: _around(g["value"], g.get("half_width"), math.sqrt(2))
             for g in over_seeds}
    return {goal: bounds for goal, bounds in found.items() if bounds is not None}


def _verdicts_agree(a, b) -> bool:
    """Whether two verdicts (``met``) agree where both are decided (None: undecided)."""
    return a is None or b is None or a == b


def goal_claims(pinned: list, reproduced: list, prefix: str, bounds: dict | None = None) -> list:
    """One row per goal of ``pinned`` (rows of ``paper_goals.goal_row``): agreed by the
    ``DIGITS`` rule when its value to ``GOAL_DECIMALS`` and its verdict are the reproduced
    one's; else by the ``WITHIN`` rule when ``bounds`` ({goal: (low, high)}:
    ``prediction_bounds`` for seed 0, ``mean_bounds`` over seeds) has its interval, the
    reproduced value lies in it and the verdicts agree wherever both are decided. A goal
    without an interval is judged to the printed digits alone."""
    found, bounds = {g["goal"]: g for g in reproduced}, bounds or {}
    rows = []
    for goal in pinned:
        other = found.get(goal["goal"])
        name = f"{prefix}{goal['goal']}"
        if other is None:
            rows.append(_row(name, _shown(goal["value"], GOAL_DECIMALS), None, "missing", False))
            continue
        a, b = _shown(goal["value"], GOAL_DECIMALS), _shown(other["value"], GOAL_DECIMALS)
        flipped = "" if _verdicts_agree(goal["met"], other["met"]) else \
            f"verdict {goal['met']} → {other['met']}"
        if a == b and goal["met"] == other["met"]:
            rows.append(_row(name, a, b, DIGITS, True))
        elif goal["goal"] in bounds:
            low, high = bounds[goal["goal"]]
            inside = low <= other["value"] <= high
            rows.append(_row(name, a, b, WITHIN, inside and not flipped,
                             "; ".join(filter(None, [f"[{low:.4f}, {high:.4f}]", flipped]))))
        else:
            rows.append(_row(name, a, b, DIGITS, False,
                             flipped or "no pinned interval (one seed)"))
    return rows


def error_claims(pinned: dict, reproduced: dict) -> list:
    """Each backbone's test error over the seeds (``seeds.json``'s accuracy intervals:
    received power against the median, coverage radius): to ``ERROR_DECIMALS``, or the
    reproduced mean within the pinned mean ± half-width·√2 (``mean_bounds``'s rule); with one
    pinned seed, to the printed digits alone."""
    rows = []
    for key, backbone in registry.BACKBONES.items():
        for target in (TARGETS[0], "coverage_radius_m"):
            a = pinned["accuracy"]["test"][key][target]
            b = reproduced["accuracy"]["test"][key][target]
            name = f"test error over seeds: {backbone.name}, {target}"
            x, y = _shown(a["mean"], ERROR_DECIMALS), _shown(b["mean"], ERROR_DECIMALS)
            bounds = _around(a["mean"], a.get("half_width"), math.sqrt(2))
            if x == y:
                rows.append(_row(name, x, y, DIGITS, True))
            elif bounds is None or b["mean"] is None:
                rows.append(_row(name, x, y, DIGITS, False, "no pinned interval (one seed)"
                                 if bounds is None else "no reproduced mean"))
            else:
                low, high = bounds
                rows.append(_row(name, x, y, WITHIN, low <= b["mean"] <= high,
                                 f"[{low:.3f}, {high:.3f}]"))
    return rows


def serving_claims(pinned: dict, reproduced: dict) -> list:
    """The serving goals (timings): both verdicts shown, not compared (``ok`` None)."""
    found = {g["goal"]: g for g in reproduced["serving"]["goals"]}
    return [_row(f"serving: {g['goal']}", g["met"], found.get(g["goal"], {}).get("met"),
                 "timing: measured again, not compared", None)
            for g in pinned["serving"]["goals"]]


def claims(pinned: Path, reproduced: Path) -> list:
    """Every claim of the pinned results under ``pinned`` against those under ``reproduced``
    (each a data folder: ``results/metrics.json`` and, if it has one, ``results/seeds.json``)."""
    a = result_files.read_metrics(pinned / "results" / "metrics.json")
    b = result_files.read_metrics(reproduced / "results" / "metrics.json")
    sa = seeds_stage.read(pinned) if (pinned / "results" / "seeds.json").is_file() else None
    over = seeds_stage.goals(sa, a) if sa is not None else []
    rows = goal_claims(a["goals"], b["goals"], "seed 0: ", prediction_bounds(over))
    if sa is not None and (reproduced / "results" / "seeds.json").is_file():
        sb = seeds_stage.read(reproduced)
        rows += goal_claims(over, seeds_stage.goals(sb, b), "over seeds: ", mean_bounds(over))
        rows += error_claims(sa, sb)
    return rows + serving_claims(a, b)


def table(rows: list) -> str:
    """The claims as a text table: claim, pinned, reproduced, the outcome and the rule it was
    judged by (with the interval, or why it failed)."""
    mark = {True: "ok", False: "MISMATCH", None: "-"}
    width = max(len(r["claim"]) for r in rows)
    lines = [f"{'claim':<{width}}  {'pinned':>10}  {'reproduced':>10}  outcome   rule"]
    for r in rows:
        rule = f"{r['rule']}: {r['detail']}" if r.get("detail") else r["rule"]
        lines.append(f"{r['claim']:<{width}}  {str(r['pinned']):>10}  "
                     f"{str(r['reproduced']):>10}  {mark[r['ok']]:<8}  {rule}")
    return "\n".join(lines)


def counts(rows: list) -> dict:
    """How many claims ``rows`` hold, how many agreed ("reproduced") and by which rule, how
    many did not and how many are timings (not compared)."""
    agreed = [r for r in rows if r["ok"] is True]
    return {"claims": len(rows), "reproduced": len(agreed),
            "printed_digits": sum(r["rule"] == DIGITS for r in agreed),
            "within_interval": sum(r["rule"] == WITHIN for r in agreed),
            "mismatches": sum(r["ok"] is False for r in rows),
            "timings": sum(r["ok"] is None for r in rows)}


def verify(profile: str, until: str | None = None, log=print, dispatch: str = "native") -> list:
    """Rerun ``profile`` from nothing in a scratch project, its kernels under the CPU dispatch
    ``dispatch`` (``DISPATCHES``: "native", this CPU's widest; "baseline", the lowest common
    one), and compare its claims with the pins (``claims``); prints the table and returns its
    rows. A run that agrees, partial (``until``) or full, is added to
    ``pins/<profile>/VERIFIED.json`` (``record``). Bad input or nothing pinned → ValueError
    before any work; a claim that does not agree → VerifyMismatch."""
    validation.one_of(*DISPATCHES)("dispatch", dispatch)
    stage_params(profile)  # the profile's parameters, checked first
    names = [s.name for s in stages()]
    if until is not None and until not in names[names.index("04_evaluate"):]:
        raise ValueError(f"until must be one of {names[names.index('04_evaluate'):]} (the "
                         f"claims need the evaluation); got {until!r}")
    listed = pins.check(profile)
    if "results/metrics.json" not in listed:
        raise ValueError(f"profile {profile!r} has no pinned results to verify: run it, then "
                         f"`python -m coverage_lib pin --profile {profile}`")
    pins.verifications(profile)  # its record is readable before the run, not after
    root = scratch_project(profile)
    wall = run_from_scratch(profile, root, until, log, dispatch)
    rows = claims(pins.pins_dir(profile), root / data_dir_of(profile))
    log(table(rows))
    n = counts(rows)
    log(f"verify: {n['claims']} claims, {n['printed_digits']} agreed to the printed digit, "
        f"{n['within_interval']} within their interval, {n['mismatches']} not, "
        f"{n['timings']} timings not compared; the scratch run ({dispatch} CPU dispatch) took "
        f"{wall / 60:.1f} min")
    if n["mismatches"]:
        bad = [r["claim"] for r in rows if r["ok"] is False]
        raise VerifyMismatch(f"{len(bad)} claims were not reproduced: {', '.join(bad[:5])}")
    record(profile, rows, wall, until, dispatch)
    return rows


class VerifyMismatch(Exception):
    """A rerun that does not reproduce the pinned claims."""


def machine_entry(dispatch: str) -> dict:
    """The machine a verification ran on: CPU model, its vector features
    (``machine.cpu_flags``), logical CPUs, the CPU dispatch the scratch run used and the fp32
    GEMM peak (``machine.gemm_peak_gflops``, measured here, in verify's own process)."""
    m = machine.machine()
    return {"cpu": m["cpu"], "flags": machine.cpu_flags(), "cpu_count": m["cpu_count"],
            "dispatch": dispatch, "gemm_peak_gflops": round(machine.gemm_peak_gflops(), 1)}


def record(profile: str, rows: list, wall_s: float, until: str | None = None,
           dispatch: str = "native") -> Path:
    """Add this verification to ``pins/<profile>/VERIFIED.json`` (format ``pins.
    VERIFIED_FORMAT``: {"format", "verifications": [...]}): which pins (their MANIFEST's
    sha256), when, on which host and machine (``machine_entry``), by which commit, in how
    long, ``until`` (None: a full run) and the ``counts`` of its claims. The verifications of
    the same pins are kept, those of other pins dropped."""
    entry = {"manifest_sha256": sha256_file(pins.pins_dir(profile) / pins.MANIFEST),
             "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "host": socket.gethostname(), "machine": machine_entry(dispatch),
             "commit": (git_state() or {}).get("commit"), "wall_s": round(wall_s, 1),
             "until": until, **counts(rows)}
    path = pins.pins_dir(profile) / pins.VERIFIED
    atomic_write_text(path, json.dumps({"format": pins.VERIFIED_FORMAT, "verifications":
                                        [*pins.verifications(profile), entry]}, indent=1) + "\n")
    return path
