"""The batch pipeline's run of one profile: validate every parameter, take the profile's lock,
then execute the notebooks in order with papermill (``execution``), skipping those whose
stamps say they are up to date (``stamps``); with replicates (seeds, learning curves) the main
run's training and evaluation run as chains beside them (``replicate_chains``), on a local or a
given Dask cluster. Executed copies land in ``data/<profile>/executed/``; ``publishing`` puts
one finished profile into the book.
"""
from __future__ import annotations

from ..core import validation
from ..core.paths import resolve
from ..datasets.replicates import RUNS_DIR
from .definitions import MAIN_CHAIN, SEEDS_STAGE, data_dir_of, stage_params, stages
from . import dispatch, fanout, pins
from .foresight import foreseen, foreseen_chains
from .execution import remove_leftovers, run_stage_if_stale
from .locks import profile_lock
from .stamps import read_stamp, recorded_wall, stamp_path
from .publishing import write_provenance
from .replicate_chains import local_workers, main_chain, replicate_list, run_chains


def run(profile: str, force: bool = False, log=print, scheduler: str | None = None,
        until: str | None = None, cpu_dispatch: str = "native") -> dict:
    """Run every stage of ``profile``; returns {stage: 'ran' | 'skipped'} and wall times
    (and the replicate chains' under "chains").

    ``scheduler``: a Dask scheduler's address (``tcp://host:8786``) or scheduler file (a path
    ending in .json) to send the replicate chains to; None runs them here. ``until``: the
    name of the last stage to run (e.g. "01_data" to generate the data set only); None runs
    them all. ``cpu_dispatch``: "native", or "baseline" to compute as another CPU would
    (``dispatch``). Bad parameters → ValueError before anything is touched; another run of
    the same profile in progress → ``PipelineBusy``, also before anything is touched."""
    all_params = stage_params(profile)  # validation first: nothing is touched on bad input
    dispatch.check(cpu_dispatch)
    if until is not None:
        validation.one_of(*(s.name for s in stages()))("until", until)
    if scheduler is not None:
        validation.non_empty_str("scheduler", scheduler)
        log(f"Dask scheduler {scheduler}: {fanout.check_scheduler(scheduler)} workers now")
    with profile_lock(profile, log), dispatch.kernels_under(cpu_dispatch):
        if cpu_dispatch != "native":
            log(f"CPU dispatch {cpu_dispatch}: every kernel starts with "
                + " ".join(f"{k}={v!r}" for k, v in dispatch.environment(cpu_dispatch).items()))
        return _run_locked(profile, all_params, force, log, scheduler, until)


def _run_locked(profile: str, all_params: dict, force: bool, log,
                scheduler: str | None = None, until: str | None = None) -> dict:
    """``run``'s work, under the profile's lock: the stages up to ``until``, in order."""
    data = resolve(data_dir_of(profile))
    remove_leftovers(data, log)
    pins.restore(profile, log)  # a fresh clone: the pinned stages' outputs, checked
    summary = {}
    plan = stages()
    if until is not None:
        plan = plan[:[s.name for s in plan].index(until) + 1]
    # with replicates to run, the main run's training and evaluation run beside them
    beside = SEEDS_STAGE in [s.name for s in plan] and bool(replicate_list(all_params))
    todo = foreseen(plan, all_params, data, force)
    chains_todo = foreseen_chains(profile, all_params, data, force) if beside else []
    log(_estimate(plan, todo, {s.name: read_stamp(stamp_path(data, s)).get("wall_s")
                               for s in plan},
                  recorded_wall(p for c in chains_todo for p in (data / RUNS_DIR / c).glob(
                      "stamps/*.json")), len(chains_todo),
                  local_workers(len(replicate_list(all_params)) + 1,
                                all_params[SEEDS_STAGE]["chain_threads"]) if beside else 1))
    side = {s.name for s, _ in main_chain(profile, all_params).steps} if beside else set()
    for i, stage in enumerate(plan, 1):
        if stage.name in side:
            if stage.name not in summary:  # the first of them: all run now
                chains_run = run_chains(profile, all_params, force, scheduler, log,
                                        with_main=True)
                summary.update(chains_run.pop(MAIN_CHAIN))
                summary["chains"] = chains_run
            continue
        summary[stage.name] = run_stage_if_stale(
            stage, all_params[stage.name], data, force,
            f"[{i}/{len(plan)}] {stage.name} ({stage.notebook})", log)
    write_provenance(profile)
    log(stage_table(summary))
    log(f"executed notebooks: {data / 'executed'} (for the book: python -m coverage_lib book "
        f"--profile {profile})")
    return summary


def _estimate(plan, todo: set, durations: dict, chain_s: float = 0.0, n_chains: int = 0,
              workers: int = 1) -> str:
    """What the run is about to do, in time: how many stages it will run (``todo``, from
    ``foreseen``) and skip, their last wall times here (their stamps), and the ``n_chains``
    replicate chains that will run (``chain_s``), ``workers`` at a time beside the main run's
    training and evaluation."""
    running = [s for s in plan if s.name in todo]
    current = len(plan) - len(running)
    skipped = f"{current or 'none'} up to date{', to be skipped' if current else ''}"
    chains_part = f", {n_chains} replicate chains to run" if n_chains else ""
    if not running and not n_chains:
        return f"{len(plan)} stages: none to run, {skipped}"
    known = [durations[s.name] for s in running if durations.get(s.name) is not None]
    head = f"{len(plan)} stages: {len(running)} to run{chains_part}, {skipped}"
    if not known and not chain_s:
        return (f"{head}; no earlier run of them recorded here: each training stage reports "
                f"its epochs and what is left as it goes")
    which = "" if len(known) == len(running) else f", {len(known)} of them known"
    total = sum(known) + chain_s
    side = (f", the replicate chains' included, {workers} at a time: about "
            f"{total / workers / 60:.0f} min of wall time" if chain_s and workers > 1 else "")
    return (f"{head}; about {total / 60:.0f} min of stage time (their last runs "
            f"here{which}){side}")


def stage_table(summary: dict) -> str:
    """The run's stages (and the replicate chains' under their names) as a table: status,
    wall time and the kernel's user and system CPU time, in seconds."""
    rows = [(name, s) for name, s in summary.items() if name != "chains"]
    rows += [(f"{chain} / {name}", s) for chain, stages_run in summary.get("chains", {}).items()
             for name, s in stages_run.items()]
    lines = [f"{'stage':<44}{'status':>8}{'wall s':>9}{'user s':>9}{'system s':>10}"]
    for name, s in rows:
        cells = [f"{s[k]:.1f}" if isinstance(s.get(k), (int, float)) else "–"
                 for k in ("wall_s", "user_s", "sys_s")]
        lines.append(f"{name:<44}{s['status']:>8}{cells[0]:>9}{cells[1]:>9}{cells[2]:>10}")
    return "\n".join(lines)
