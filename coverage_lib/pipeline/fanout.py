"""The replicate chains on a Dask cluster (``dask.distributed``): the one a scheduler's address
names, or a local one the pipeline starts (``run_locally``: one single-threaded worker process
per chain that fits this machine's CPUs, closed after).

Each chain (``replicate_chains.Chain``: a replicate's data set, training stages and
evaluation) is one Dask task. The workers must run this project from the same folder on a
shared filesystem (the project root the client sees, or ``$COVERAGE_PROJECT_ROOT``), with the
same environment: a chain reads and writes ``data/<profile>/runs/<replicate>/`` there, every file atomically and
every stage stamped, as a local run does. A worker lost mid-chain (killed, its node gone) is
Dask's to handle: the scheduler gives the task to another worker, which removes the lost
attempt's leftovers, skips the stages that had finished and reruns the rest.

Progress: each chain's own lines (stage started, skipped, done) are sent to the client as Dask
events on the topic ``coverage-pipeline`` and printed there; the scheduler's dashboard shows the
tasks.
"""
from __future__ import annotations

import os
import uuid
from ..core.paths import project_root
from . import dispatch
from .definitions import MAIN_CHAIN
from .execution import PipelineError

TOPIC = "coverage-pipeline"


def _task(what, args: tuple, root: str, cpu_dispatch: str, *after) -> dict:
    """What a worker runs: a chain, ``what(*args)`` (a module-level function, which Dask
    sends by reference), its kernels under the client's ``cpu_dispatch`` (``dispatch``), its
    log lines sent to the client as events. ``after``: the results of the tasks it had to
    wait for (unused)."""
    from distributed import get_worker


    here = str(project_root())
    if here != root:
        raise RuntimeError(f"this Dask worker sees the project at {here}, the client at {root}: "
                           f"start the workers from the same checkout on a shared filesystem "
                           f"(or set COVERAGE_PROJECT_ROOT={root} for them)")
    worker = get_worker()

    def log(line):
        worker.log_event(TOPIC, {"line": str(line), "worker": worker.address})

    with dispatch.kernels_under(cpu_dispatch):
        return what(*args, log=log)


def connect(scheduler: str):
    """A client of the scheduler at ``scheduler``: an address (tcp://host:port) or a scheduler
    file (a path ending in .json, as ``dask scheduler --scheduler-file`` writes)."""
    from distributed import Client

    if scheduler.endswith(".json"):
        if not os.path.isfile(scheduler):
            raise ValueError(f"scheduler file {scheduler!r} does not exist")
        return Client(scheduler_file=scheduler, timeout="30s")
    return Client(scheduler, timeout="30s")


def check_scheduler(scheduler: str, timeout: str = "5s") -> int:
    """The number of workers of the scheduler at ``scheduler``, checked before any work
    starts; unreachable, or not a scheduler → ValueError naming it and what is expected."""
    from distributed import Client

    expected = ("the address a `dask scheduler` printed (tcp://host:8786) or its scheduler "
                "file (*.json)")
    try:
        if scheduler.endswith(".json"):
            if not os.path.isfile(scheduler):
                raise OSError(f"no such file: {scheduler}")
            client = Client(scheduler_file=scheduler, timeout=timeout)
        else:
            client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise ValueError(f"scheduler: cannot reach a Dask scheduler at {scheduler!r} "
                         f"({type(err).__name__}: {err}); give {expected}") from None
    with client:
        return len(client.scheduler_info().get("workers", {}))


def run_locally(profile: str, names: list, first: list, workers: int, force: bool,
                log=print, *, run_chain, run_named_chain) -> dict:
    """``run_on_dask`` on a cluster of ``workers`` single-threaded worker processes on this
    machine, started for the purpose and closed after."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=":0") as cluster:
        return run_on_dask(profile, names, first, cluster.scheduler_address, force, log,
                           run_chain=run_chain, run_named_chain=run_named_chain)


def run_on_dask(profile: str, names: list, first: list, scheduler: str, force: bool,
                log=print, *, run_chain, run_named_chain) -> dict:
    """Run the replicate chains ``names`` of ``profile`` on the Dask cluster at ``scheduler``;
    {name: summary} once all have finished. ``first``: chains to run before them, side by
    side (``replicate_chains.run_chains``: the main run's training and evaluation, and the
    replicates' training): a replicate's whole chain waits for its own training and for the
    main run (its evaluation refits the main run's LightGBM choice; the stages that ran are
    skipped, stamped). ``run_chain(chain, force, log=)`` runs a chain of ``first``,
    ``run_named_chain(profile, name, force, log=)`` one of ``names``, each on a worker (the
    caller's functions: this module stays below the chains). A chain that fails raises its
    error here, naming the chain."""
    from distributed import as_completed


    try:
        client = connect(scheduler)
    except (OSError, TimeoutError) as err:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {err}") from None
    with client:
        client.subscribe_topic(TOPIC, lambda event: log(
            f"{event[1]['line']}  [{event[1]['worker']}]"))
        workers = client.scheduler_info().get("workers", {})
        log(f"Dask: {len(workers)} workers; dashboard {client.dashboard_link}")
        run, root, cpu = uuid.uuid4().hex[:8], str(project_root()), dispatch.current()
        labels, before, training_of, trained = {}, {}, {}, {}
        for chain in first:
            label = MAIN_CHAIN if chain.replicate.is_main else f"{chain.name} training"
            future = client.submit(_task, run_chain, (chain, force), root, cpu, pure=False,
                                   key=f"coverage-{profile}-{label.replace(' ', '-')}-{run}")
            labels[future] = label
            before[label] = future
            if not chain.replicate.is_main:
                training_of[future] = chain.name
        for name in names:
            after = [f for label, f in before.items() if label in (MAIN_CHAIN, f"{name} training")]
            future = client.submit(_task, run_named_chain, (profile, name, force), root,
                                   cpu, *after, pure=False,
                                   key=f"coverage-{profile}-{name}-{run}")
            labels[future] = name
        done = {}
        for future in as_completed(list(labels)):
            label = labels[future]
            try:
                result = future.result()
            except Exception as err:
                for other in labels:
                    other.cancel()
                what = f"replicate {label}" if label in names else label
                raise PipelineError(f"{what} failed on the Dask cluster: "
                                    f"{type(err).__name__}: {err}") from err
            if label in names or label == MAIN_CHAIN:
                done[label] = result
            elif future in training_of:
                trained[training_of[future]] = result
            if label in names:
                log(f"{label}: finished ({sum(n in done for n in names)}/{len(names)} chains)")
        return {name: _with_training(done[name], trained.get(name, {}))
                for name in (MAIN_CHAIN, *names) if name in done}


def _with_training(chain: dict, trained: dict) -> dict:
    """A chain's stage summaries, its training stages' as this run's training task ran them:
    its evaluation task, which came after, found them up to date ("skipped")."""
    return {stage: trained[stage] if trained.get(stage, {}).get("status") == "ran" else summary
            for stage, summary in chain.items()}
