"""``verify``: run a profile again from nothing, in a scratch project, and compare what it
gives with the profile's pinned results, claim by claim.

The scratch project (``build/verify/<profile>/``) holds copies of the notebooks, the profiles
and the book's pages and no pins, so every stage runs (``python -m coverage_lib run`` in a
process of its own). The claims are the goals the book's first page judges:

- each goal of the main run (seed 0: ``metrics.json``'s ``goals``), deterministic on a given
  machine: its value must agree to the digits the goals table prints, its verdict must agree;
- each goal judged over the seeds (``intervals.goals`` of ``seeds.json``) and each backbone's
  test error over the seeds: the same to the printed digits, or, where the seeds' runs
  differ (another machine), the reproduced mean within the pinned interval;
- the serving goals (ratios of timings, which vary from run to run): shown, not compared.

``--until STAGE`` stops the run there (``04_evaluate``: the main run only, about half the
time); the claims over the seeds are then not checked. A full verification that passes is
recorded in ``pins/<profile>/VERIFIED.json`` (``pins.VERIFIED``: when, where, which pins), which the book's first
page quotes.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..core import machine
from ..core.io import atomic_write_text, sha256_file
from ..core.paths import project_root
from ..core.schema import TARGETS
from ..evaluation import intervals, result_files
from ..evaluation.paper_goals import GOAL_DECIMALS
from ..models import registry
from . import pins
from .definitions import data_dir_of, stage_params, stages
from .provenance import git_state

SCRATCH = "build/verify"
ERROR_DECIMALS = 3  # the book's accuracy tables print errors to three decimals


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


def run_from_scratch(profile: str, root: Path, until: str | None, log=print) -> float:
    """``python -m coverage_lib run --profile P`` with ``root`` as the project, in a process of
    its own; its wall time in seconds. A failed run → RuntimeError."""
    command = [sys.executable, "-m", "coverage_lib", "run", "--profile", profile,
               *(["--until", until] if until else [])]
    log(f"verify: {' '.join(command[1:])} in {root.relative_to(project_root())}/ (no pins)")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project_root(),
                          env={**os.environ, "COVERAGE_PROJECT_ROOT": str(root)})
    if done.returncode != 0:
        raise RuntimeError(f"the scratch run of {profile!r} failed (exit status "
                           f"{done.returncode}); its output is above")
    return time.perf_counter() - start


def _row(claim: str, pinned, reproduced, rule: str, ok: bool | None) -> dict:
    return {"claim": claim, "pinned": pinned, "reproduced": reproduced, "rule": rule, "ok": ok}


def _shown(value, decimals: int):
    return None if value is None else round(float(value), decimals)


def goal_claims(pinned: list, reproduced: list, prefix: str, interval: bool = False) -> list:
    """One row per goal of ``pinned`` (rows of ``paper_goals.goal_row``, with ``half_width``
    where judged over seeds): agreed when the value to ``GOAL_DECIMALS`` and the verdict
    agree; over seeds, also when the reproduced mean lies within the pinned interval."""
    found = {g["goal"]: g for g in reproduced}
    rows = []
    for goal in pinned:
        other = found.get(goal["goal"])
        name = f"{prefix}{goal['goal']}"
        if other is None:
            rows.append(_row(name, _shown(goal["value"], GOAL_DECIMALS), None, "missing", False))
            continue
        a, b = _shown(goal["value"], GOAL_DECIMALS), _shown(other["value"], GOAL_DECIMALS)
        if a == b and goal["met"] == other["met"]:
            rows.append(_row(name, a, b, f"{GOAL_DECIMALS} decimals, same verdict", True))
        elif interval and goal.get("half_width") is not None:
            low, high = goal["value"] - goal["half_width"], goal["value"] + goal["half_width"]
            rows.append(_row(name, a, b, f"within [{low:.4f}, {high:.4f}]",
                             low <= other["value"] <= high))
        else:
            rows.append(_row(name, a, b, f"{GOAL_DECIMALS} decimals, same verdict", False))
    return rows


def error_claims(pinned: dict, reproduced: dict) -> list:
    """Each backbone's test error over the seeds (``seeds.json``'s accuracy intervals:
    received power against the median, coverage radius): to ``ERROR_DECIMALS``, or within the
    pinned interval."""
    rows = []
    for key, backbone in registry.BACKBONES.items():
        for target in (TARGETS[0], "coverage_radius_m"):
            a = pinned["accuracy"]["test"][key][target]
            b = reproduced["accuracy"]["test"][key][target]
            name = f"test error over seeds: {backbone.name}, {target}"
            x, y = _shown(a["mean"], ERROR_DECIMALS), _shown(b["mean"], ERROR_DECIMALS)
            if x == y:
                rows.append(_row(name, x, y, f"{ERROR_DECIMALS} decimals", True))
            else:
                low, high = a["low"], a["high"]
                rows.append(_row(name, x, y, f"within [{low:.3f}, {high:.3f}]", None
                                 if low is None else low <= b["mean"] <= high))
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
    rows = goal_claims(a["goals"], b["goals"], "seed 0: ")
    if (pinned / "results" / "seeds.json").is_file() and \
            (reproduced / "results" / "seeds.json").is_file():
        sa, sb = intervals.read(pinned), intervals.read(reproduced)
        rows += goal_claims(intervals.goals(sa, a), intervals.goals(sb, b), "over seeds: ",
                            interval=True)
        rows += error_claims(sa, sb)
    return rows + serving_claims(a, b)


def table(rows: list) -> str:
    """The claims as a text table: claim, pinned, reproduced, rule and the outcome."""
    mark = {True: "ok", False: "MISMATCH", None: "-"}
    width = max(len(r["claim"]) for r in rows)
    lines = [f"{'claim':<{width}}  {'pinned':>10}  {'reproduced':>10}  outcome   rule"]
    for r in rows:
        lines.append(f"{r['claim']:<{width}}  {str(r['pinned']):>10}  "
                     f"{str(r['reproduced']):>10}  {mark[r['ok']]:<8}  {r['rule']}")
    return "\n".join(lines)


def verify(profile: str, until: str | None = None, log=print) -> list:
    """Rerun ``profile`` from nothing in a scratch project and compare its claims with the
    pins (``claims``); prints the table and returns its rows. A full run that agrees is
    recorded in ``pins/<profile>/VERIFIED.json``. Bad input or nothing pinned → ValueError
    before any work."""
    stage_params(profile)  # the profile's parameters, checked first
    names = [s.name for s in stages()]
    if until is not None and until not in names[names.index("04_evaluate"):]:
        raise ValueError(f"until must be one of {names[names.index('04_evaluate'):]} (the "
                         f"claims need the evaluation); got {until!r}")
    listed = pins.check(profile)
    if "results/metrics.json" not in listed:
        raise ValueError(f"profile {profile!r} has no pinned results to verify: run it, then "
                         f"`python -m coverage_lib pin --profile {profile}`")
    root = scratch_project(profile)
    wall = run_from_scratch(profile, root, until, log)
    rows = claims(pins.pins_dir(profile), root / data_dir_of(profile))
    log(table(rows))
    bad = [r["claim"] for r in rows if r["ok"] is False]
    log(f"verify: {len(rows)} claims, {sum(r['ok'] is True for r in rows)} reproduced, "
        f"{len(bad)} not, {sum(r['ok'] is None for r in rows)} timings not compared; the "
        f"scratch run took {wall / 60:.1f} min")
    if not bad and until is None:
        record(profile, rows, wall)
    if bad:
        raise VerifyMismatch(f"{len(bad)} claims were not reproduced: {', '.join(bad[:5])}")
    return rows


class VerifyMismatch(Exception):
    """A rerun that does not reproduce the pinned claims."""


def record(profile: str, rows: list, wall_s: float) -> Path:
    """``pins/<profile>/VERIFIED.json``: when and where the pins (their MANIFEST's sha256) were
    reproduced, by which commit, in how long, and how many claims agreed."""
    m = machine.machine()
    path = pins.pins_dir(profile) / pins.VERIFIED
    atomic_write_text(path, json.dumps({
        "manifest_sha256": sha256_file(pins.pins_dir(profile) / pins.MANIFEST),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(), "cpu": m["cpu"], "cpu_count": m["cpu_count"],
        "commit": (git_state() or {}).get("commit"), "wall_s": round(wall_s, 1),
        "claims": len(rows), "reproduced": sum(r["ok"] is True for r in rows)}, indent=1) + "\n")
    return path
