"""Replicate chains (seeds and learning curves): each replicate's data set, training stages
and evaluation, run in its own folder (``data/<profile>/runs/<replicate>/``), stamped as the
main run's stages are; side by side on a local Dask cluster, on a given one (``fanout``), or
in this process.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from ..core import validation
from ..core.paths import dataset_dir, resolve
from ..datasets import replicates
from ..datasets.dataset import FILE_MANIFEST, load_stats
from ..evaluation import quiet, result_files
from . import fanout
from .definitions import (EVALUATION_STAGE, MAIN_CHAIN, REPLICATE_RESULT, SEEDS_STAGE,
                          chain_stages, data_dir_of, stage_params, stages)
from .data_identity import record, settle
from .execution import remove_leftovers, run_stage_if_stale
from .locks import folder_lock
from .stamps import read_stamp, stage_hash, stale_reason, stamp_path, write_stamp


@dataclass(frozen=True)
class Chain:
    """One replicate's stages and their parameters, run in its own folder (``data_dir``)."""
    profile: str
    replicate: replicates.Replicate
    data_dir: str
    data_seed: int
    split_fractions: tuple
    steps: tuple  # ((Stage, params), ...)
    threads: int = 1  # CPU threads of its notebooks' kernels, wherever it runs

    @property
    def name(self) -> str:
        """The replicate's name (its folder under ``runs/``)."""
        return self.replicate.name


def replicate_list(all_params: dict) -> list:
    """The seeds stage's replicates but the main run (``replicates.replicates``)."""
    sweep = all_params[SEEDS_STAGE]
    return [r for r in replicates.replicates(sweep["seeds"], sweep["train_rows"])
            if not r.is_main]


def chains(profile: str, all_params: dict, evaluated: bool = True,
           n_full: int | None = None) -> list[Chain]:
    """The replicate chains of a profile (every replicate of the seeds stage but the main
    run), with each stage's parameters: the main run's, with the replicate's folder, seed and
    epoch budget; the replicate evaluation refits LightGBM with the main run's chosen
    hyper-parameters (read from its ``results/metrics.json``, so call this after the
    evaluation stage). ``evaluated`` False: the training stages only (before that).
    ``n_full``: the main data set's training rows, where it is not here to read."""
    sweep, main_dir = all_params[SEEDS_STAGE], data_dir_of(profile)
    todo = replicate_list(all_params)
    if not todo:
        return []

    n_full = n_full or load_stats(dataset_dir(main_dir))["n_rows"]
    metrics = main_metrics(main_dir) if evaluated else None
    evaluation = all_params["04_evaluate"]
    data_params = all_params["01_data"]
    out = []
    for replicate in todo:
        run_dir = replicate.data_dir(main_dir)
        steps = []
        for stage in chain_stages()[:-1]:
            p = dict(all_params[stage.name])
            p.update(data_dir=run_dir, seed=replicate.seed, epochs=replicates.epochs_for(
                p["epochs"], n_full, replicate.train_rows, sweep["max_epoch_factor"]))
            steps.append((stage, p))
        if metrics is not None:
            steps.append((chain_stages()[-1], replicate_params(
                profile, run_dir, replicate, metrics, evaluation)))
        out.append(Chain(profile, replicate, run_dir, data_params["seed"],
                         tuple(data_params["split_fractions"]), tuple(steps),
                         sweep["chain_threads"]))
    return out


def replicate_params(profile: str, run_dir: str, replicate, metrics: dict,
                     evaluation: dict) -> dict:
    """The replicate evaluation's parameters: the main run's chosen LightGBM hyper-parameters
    (its ``metrics``) and its evaluation parameters (``evaluation``)."""
    return validation.validate("replicate", chain_stages()[-1].rules, {
        "profile": profile, "data_dir": run_dir, "seed": replicate.seed,
        "lightgbm_params": {t: c["params"] for t, c in metrics["lightgbm"]["chosen"].items()},
        # the rules only where the book's tables use them: a seed's run on every row
        "physics_rows": evaluation["physics_rows"] if replicate.train_rows is None else 0,
        # a learning-curve point is the test split's error: no OOD predictions
        "ood_sets": replicate.train_rows is None,
        **{k: evaluation[k] for k in ("lightgbm_max_rounds", "lightgbm_early_stopping",
                                      "lightgbm_min_improvement", "selector_tolerance")}})


def main_chain(profile: str, all_params: dict) -> Chain:
    """The main run's training stages and its evaluation as a chain of their own (in the
    profile's folder, on the data stage's data set), to run beside the replicate chains."""
    data_params, main_dir = all_params["01_data"], data_dir_of(profile)
    names = [s.name for s in chain_stages()[:-1]] + [EVALUATION_STAGE]
    steps = tuple((s, all_params[s.name]) for s in stages() if s.name in names)
    return Chain(profile, replicates.Replicate(0), main_dir, data_params["seed"],
                 tuple(data_params["split_fractions"]), steps,
                 all_params[SEEDS_STAGE]["chain_threads"])


def run_named_chain(profile: str, name: str, force: bool = False, log=print) -> dict:
    """Run replicate chain ``name`` of ``profile`` whole, its parameters read now (after the
    main run's evaluation): stages that ran beside the main run are skipped, stamped."""
    chain = {c.name: c for c in chains(profile, stage_params(profile))}[name]
    return run_chain(chain, force, log)


@contextlib.contextmanager
def kernel_threads(threads: int):
    """Notebook kernels started meanwhile (they inherit this process's environment) use
    ``threads`` CPU threads (``OMP_NUM_THREADS``: torch, LightGBM and NumPy's BLAS)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def run_chain(chain: Chain, force: bool = False, log=print) -> dict:
    """Run one replicate chain where this process runs: its data set, then its stages, each
    skipped when up to date (stamps in the chain's folder, as the main run's), their kernels
    on ``chain.threads`` CPU threads. Leftovers of an interrupted attempt (a worker killed
    mid-stage) are removed first."""
    data = resolve(chain.data_dir)
    name = MAIN_CHAIN if chain.replicate.is_main else chain.name
    with folder_lock(data, name), kernel_threads(chain.threads):
        if not chain.replicate.is_main:  # the main run's own are removed under its lock
            remove_leftovers(data, log)
            start = time.perf_counter()
            if replicates.write_dataset(data_dir_of(chain.profile), chain.replicate,
                                        chain.data_seed, chain.split_fractions, log):
                log(f"{name}: wrote its data set in {time.perf_counter() - start:.1f} s")
            settle_cut(data, name, log)
        if not force and not chain.replicate.is_main and result_current(chain, data) \
                and evaluation_foreseen_current(chain, data):
            log(f"{name}: its result is up to date (its model files need not be here: pins "
                f"keep a replicate's result, not its checkpoints), {len(chain.steps)} stages "
                f"skipped")
            return {stage.name: {"status": "skipped", "wall_s": read_stamp(
                stamp_path(data, stage)).get("wall_s")} for stage, _ in chain.steps}
        summary = {}
        for i, (stage, p) in enumerate(chain.steps, 1):
            # a replicate's stage never computes beside the main run's timings (``quiet``)
            with contextlib.nullcontext() if chain.replicate.is_main else \
                    quiet.computing(data_dir_of(chain.profile), log):
                summary[stage.name] = run_stage_if_stale(
                    stage, p, data, force,
                    f"{name} [{i}/{len(chain.steps)}] {stage.name} ({stage.notebook})", log)
        return summary


def result_current(chain: Chain, data) -> bool:
    """Whether a replicate chain's last stage (its evaluation) is up to date and every stage
    before it was run by the same recipe (notebook, parameters, code, inputs), even where their
    outputs (the checkpoints) are not here: their stamps' checksums stand in for them
    (``stamps.stage_hash``'s ``recorded``). Outputs that are here must be the recorded ones.
    A chain of training stages only (run before the main evaluation): they are, and its
    evaluation's result is here; the evaluation's own check comes when it is due."""
    evaluation, recorded = chain_stages()[-1].name, recorded_identities(chain, data)
    for stage, p in chain.steps:
        stamp = read_stamp(stamp_path(data, stage))
        if stale_reason(stage, stamp, stage_hash(stage, p, recorded), data,
                        missing_ok=stage.name != evaluation) is not None:
            return False
        recorded.update(stamp["outputs"])
    if all(stage.name != evaluation for stage, _ in chain.steps):
        return bool(read_stamp(data / "stamps" / f"{evaluation}.json")) \
            and (data / REPLICATE_RESULT).is_file()
    return bool(chain.steps)


CUT_STAMP = "dataset.json"  # in a chain's stamps/: the data set its stages ran on


def recorded_data_set(data) -> dict | None:
    """The data set a chain's stages ran on ({"identity", "fingerprint"}:
    ``data_identity.record``, in its ``stamps/dataset.json``); None when none is recorded."""
    return read_stamp(data / "stamps" / CUT_STAMP).get("data_sets", {}).get("dataset")


def settle_cut(data, name: str, log=print) -> None:
    """Compare a chain's data set, just cut (or already there), with the one its stamps were
    made on (``data_identity.settle``: it stands for it within tolerance); record it anew
    where nothing was recorded or it differs."""
    found = settle(data / "dataset", recorded_data_set(data), name, log)
    if found is None or found["state"] == "different":
        write_stamp(data / "stamps" / CUT_STAMP, {"data_sets": record(("dataset",), data)})


def recorded_identities(chain: Chain, data) -> dict:
    """{"dataset/MANIFEST.txt": identity} of the data set the chain's stamps record, standing
    in for it in the stage hashes while it is not here (a fresh clone, before its cut)."""
    found = recorded_data_set(data)
    return {f"dataset/{FILE_MANIFEST}": found["identity"]} if found else {}


def main_metrics(main_dir) -> dict | None:
    """The main run's ``metrics.json``, or None where there is none yet or it cannot be read
    as the current format (one written by an older version, as pins restore before the
    evaluation that rewrites them reruns): the replicates' evaluations are planned once the
    main evaluation has written it."""
    path = resolve(main_dir) / "results" / "metrics.json"
    if not path.is_file():
        return None
    try:
        return result_files.read_metrics(path)
    except ValueError:
        return None


def evaluation_foreseen_current(chain: Chain, data) -> bool:
    """For a chain of training stages only (run beside the main run's evaluation): whether its
    evaluation, with the parameters the main run's present ``metrics.json`` gives it, would be
    up to date. Where it would not (its notebook, code or parameters changed), the checkpoints
    it needs are trained now, beside the main evaluation, rather than after it: a pinned
    chain keeps its result, not its checkpoints. (Where the main evaluation then chooses
    other LightGBM parameters, the evaluation reruns on the checkpoints trained here.) True
    for a chain with its evaluation, or before any main evaluation."""
    evaluation = chain_stages()[-1].name
    if any(stage.name == evaluation for stage, _ in chain.steps) or chain.replicate.is_main:
        return True
    if main_metrics(data_dir_of(chain.profile)) is None:
        return True
    whole = {c.name: c for c in chains(chain.profile, stage_params(chain.profile))}.get(
        chain.name)
    return whole is None or result_current(whole, data)


def local_workers(n_chains: int, threads: int) -> int:
    """How many chains run side by side here: one per ``threads`` of this process's CPUs, at
    most one per chain."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(n_chains, (cpus or 1) // threads))


def run_chains(profile: str, all_params: dict, force: bool, scheduler: str | None,
               log=print, with_main: bool = False) -> dict:
    """Every replicate chain of ``profile``; {chain name: its stages' summaries}.

    Given a Dask scheduler's address (or scheduler file), fanned out to that cluster; else side
    by side on a local Dask cluster of one worker per ``chain_threads`` CPUs
    (``local_workers``), or in this process where that is one (``fanout``). Every chain's
    kernels use ``chain_threads`` threads on any of these, so its results do not depend on
    where it ran. ``with_main``: the main run's training and evaluation (``main_chain``, under
    ``MAIN_CHAIN`` in the result) run beside the chains' training; each chain's evaluation,
    which refits the main run's LightGBM choice, waits for it."""
    names = [r.name for r in replicate_list(all_params)]
    if not names:
        return {}
    first = [main_chain(profile, all_params), *chains(profile, all_params, evaluated=False)] \
        if with_main else []
    threads = all_params[SEEDS_STAGE]["chain_threads"]
    # what a Dask worker runs: module-level functions, sent by reference
    tasks = {"run_chain": run_chain, "run_named_chain": run_named_chain}
    workers = local_workers(len(names) + with_main, threads)
    where = (f"on the Dask cluster at {scheduler}" if scheduler else
             f"on a local Dask cluster of {workers} workers" if workers > 1 else "in this process")
    log(f"{len(names)} replicate chains ({', '.join(names)})"
        f"{', beside the main run,' if with_main else ''} {where}, {threads} CPU thread(s) each")
    if scheduler:
        return fanout.run_on_dask(profile, names, first, scheduler, force, log, **tasks)
    if workers > 1:
        return fanout.run_locally(profile, names, first, workers, force, log, **tasks)
    done = {MAIN_CHAIN: run_chain(first[0], force, log)} if with_main else {}
    return {**done, **{name: run_named_chain(profile, name, force, log) for name in names}}
