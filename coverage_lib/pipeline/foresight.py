"""What a run is about to do: which of its stages and replicate chains will run, judged by their
stamps before any of them runs (the opening estimate counts only those).

A stage will run when its stamp is stale (``stamps.stale_reason``) or when a stage it reads
from will run. A data set that is missing but whose recipe is unchanged (a fresh clone) is
foreseen to agree with the one its stamps recorded (``data_identity``): the stages that read it
are judged on that recorded identity.
"""
from __future__ import annotations

from pathlib import Path

from ..core.paths import resolve
from ..datasets.dataset import FILE_MANIFEST, load_stats
from .replicate_chains import chains, replicate_list, result_current
from .stamps import read_stamp, stage_hash, stale_reason, stamp_path, under


def foreseen(plan, all_params: dict, data: Path, force: bool = False) -> set:
    """The names of the stages of ``plan`` that the run will run."""
    if force:
        return {s.name for s in plan}
    recorded, changed, todo = {}, [], set()
    for stage in plan:
        stamp = read_stamp(stamp_path(data, stage))
        for entry, found in stamp.get("data_sets", {}).items():
            recorded.setdefault(f"{entry}/{FILE_MANIFEST}", found["identity"])
        digest = stage_hash(stage, all_params[stage.name], recorded)
        reason = stale_reason(stage, stamp, digest, data)
        upstream = any(under(r, w) or under(w, r) for r in stage.reads for w in changed)
        if reason is None and not upstream:
            continue
        todo.add(stage.name)
        same_recipe = stamp.get("hash") == digest and not upstream
        changed += [w for w in stage.writes
                    if not (same_recipe and w in stamp.get("data_sets", {}))]
    return todo


def foreseen_chains(profile: str, all_params: dict, data: Path, force: bool = False) -> list:
    """The names of the replicate chains the run will run (every one before the main run has
    an evaluation's results, or with ``force``)."""
    names = [r.name for r in replicate_list(all_params)]
    if force or not (data / "results" / "metrics.json").is_file():
        return names
    n_full = _training_rows(data)
    if n_full is None:
        return names
    return [c.name for c in chains(profile, all_params, n_full=n_full)
            if not result_current(c, resolve(c.data_dir))]


def _training_rows(data: Path) -> int | None:
    """The main data set's training rows: from its statistics, or, before the data stage has
    run here, from the fingerprint its stamp recorded."""
    try:
        return load_stats(data / "dataset")["n_rows"]
    except (ValueError, OSError):
        found = read_stamp(data / "stamps" / "01_data.json").get("data_sets", {}).get("dataset")
        fp = (found or {}).get("fingerprint") or {}
        return fp.get("splits", {}).get("train", {}).get("rows")
