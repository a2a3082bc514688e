"""Executing one stage: its notebook run by papermill on a kernel of its own, unless its stamp
says it is up to date (``run_stage_if_stale``); the executed copy's prose kept current.
"""
from __future__ import annotations

import contextlib
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import nbformat

from ..core import progress
from ..core.io import atomic_write_text
from ..core.paths import project_root, resolve
from . import dispatch
from .data_identity import data_set_entries, record, settle
from .definitions import Stage
from .provenance import git_state
from .stamps import (output_checksums, read_stamp, stage_hash, stale_reason, stamp_path,
                     write_stamp)


class PipelineError(RuntimeError):
    """A stage failed; the message names the notebook and the cell."""


def remove_leftovers(data: Path, log=print) -> None:
    """Partial files of an interrupted run (killed during a stage or during a write): the
    executed notebook papermill was writing, its progress file, and atomic writes' temporary
    files. Only called under the profile's lock, so no other run can be writing them."""
    leftovers = (sorted(data.glob("executed/.*.running.ipynb"))
                 + sorted(data.glob("executed/.*.progress")) + sorted(data.rglob(".*.tmp")))
    for path in leftovers:
        path.unlink(missing_ok=True)
        log(f"removed {path.relative_to(data)}, left behind by an interrupted run")


def is_injected(cell) -> bool:
    """Whether ``cell`` holds the parameters papermill injected."""
    return "injected-parameters" in cell.metadata.get("tags", [])


def refresh_prose(notebook, executed: Path) -> bool:
    """Give the executed copy the notebook's current prose (markdown and raw cells), keeping
    its code cells, outputs and injected parameters. Only when the code cells are the same
    (otherwise the stage reruns anyway). Returns True if the copy changed."""
    source = nbformat.read(resolve(notebook), as_version=4)
    done = nbformat.read(executed, as_version=4)
    ran = [c for c in done.cells if c.cell_type == "code" and not is_injected(c)]
    if [c.source for c in ran] != [c.source for c in source.cells if c.cell_type == "code"]:
        return False
    injected, ran_iter, cells = [c for c in done.cells if is_injected(c)], iter(ran), []
    for cell in source.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        cells.append(next(ran_iter))
        if "parameters" in cell.metadata.get("tags", []):
            cells.extend(injected)
    if [(c.cell_type, c.source) for c in cells] == [(c.cell_type, c.source) for c in done.cells]:
        return False
    done.cells = cells
    atomic_write_text(executed, nbformat.writes(done))
    return True


def refresh_prose_of(stage: Stage, data: Path, stamp: dict, path: Path) -> bool:
    """``refresh_prose`` for an up-to-date stage, recording the executed copy's new checksum
    in its stamp; True if the prose changed."""
    if not refresh_prose(stage.notebook, data / "executed" / f"{stage.name}.ipynb"):
        return False
    stamp["outputs"] = output_checksums(stage, data)
    write_stamp(path, stamp)
    return True


def _tag_parameters_cell(path: Path) -> None:
    """Hide the defaults (the ``parameters`` cell) in the executed copy: readers see the
    injected values instead."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    atomic_write_text(path, nbformat.writes(nb))


def kernel_environment(environ) -> dict:
    """The environment a notebook kernel starts with: ``environ`` without glibc's allocator
    settings (``MALLOC_*``). Dask's nanny starts its workers with
    ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``) and a kernel
    started from a worker would inherit it; with any ``MALLOC_*`` threshold set, glibc switches
    off its dynamic mmap threshold and maps and unmaps every buffer over 128 KiB at every
    training step (measured: half the speed, a third of the CPU time in the kernel). Kernels
    get a plain process's allocator wherever the pipeline runs them. (Their CPU dispatch is
    applied after: ``dispatch.kernel_environment``.)"""
    return {k: v for k, v in environ.items() if not k.startswith("MALLOC_")}


def kernel_manager_class(clean_environment: bool = True, progress_file: Path | None = None):
    """The kernel manager every stage's kernel starts with.

    It talks to its kernel over local IPC sockets instead of loopback TCP: nothing listens on a
    port, and ipykernel has no reason to print its "running over TCP without encryption"
    warning at every stage. Each kernel's sockets get a path of their own in Jupyter's runtime
    folder (jupyter_client's default, ``kernel-ipc-N`` in the working folder, is shared by every
    kernel started there: a kernel of a run killed outright, or of another profile running
    beside this one, would collide with it). The kernel's environment is
    ``kernel_environment``'s (``clean_environment`` False keeps the parent's as it is: for
    ``benchmarks/bench_kernel_env.py`` only), with ``progress_file`` as the file its library
    calls report progress to (``core.progress``)."""
    import uuid

    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
            super().__init__(transport="ipc",
                             ip=str(runtime / f"coverage-{uuid.uuid4().hex[:16]}-ipc"), **kwargs)

        async def _async_pre_start_kernel(self, **kw):
            command, kw = await super()._async_pre_start_kernel(**kw)
            env = dict(kw.get("env", os.environ))
            if clean_environment:
                env = dispatch.kernel_environment(kernel_environment(env))
            if progress_file is not None:
                env[progress.ENV] = str(progress_file)
            kw["env"] = env
            return command, kw

    return IPCKernelManager


def run_stage(stage: Stage, p: dict, executed: Path, progress_file: Path | None = None) -> None:
    """Execute one stage's notebook with parameters ``p`` into ``executed`` (written whole
    once it has finished); a failing cell → ``PipelineError`` naming it, the executed copy
    with the error kept beside as ``<stage>.failed.ipynb``. The kernel reports its progress
    to ``progress_file`` (``followed_progress``)."""
    import papermill as pm

    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    try:
        pm.execute_notebook(str(resolve(stage.notebook)), str(tmp), parameters=p,
                            kernel_name="python3", cwd=str(project_root()),
                            progress_bar=False, log_output=False,
                            kernel_manager_class=kernel_manager_class(
                                progress_file=progress_file))
    except pm.PapermillExecutionError as err:
        failed = executed.with_name(f"{executed.stem}.failed.ipynb")
        shutil.move(tmp, failed)
        raise PipelineError(
            f"stage {stage.name} failed in {stage.notebook}, cell {err.cell_index} "
            f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
            f"the executed notebook with the error is {failed}") from None
    _tag_parameters_cell(tmp)
    tmp.replace(executed)
    executed.with_name(f"{executed.stem}.failed.ipynb").unlink(missing_ok=True)


def run_stage_if_stale(stage: Stage, p: dict, data: Path, force: bool, prefix: str,
                       log) -> dict:
    """Run one stage whose outputs live under ``data`` unless it is up to date (its stamp in
    ``data/stamps/``); {"status": "ran" | "skipped", "wall_s"}."""
    (data / "executed").mkdir(parents=True, exist_ok=True)
    (data / "stamps").mkdir(parents=True, exist_ok=True)
    digest = stage_hash(stage, p)
    path = stamp_path(data, stage)
    executed = data / "executed" / f"{stage.name}.ipynb"
    stamp = read_stamp(path)
    reason = "--force" if force else stale_reason(stage, stamp, digest, data)
    if reason is None:
        note = " (its prose was refreshed from the notebook)" \
            if refresh_prose_of(stage, data, stamp, path) else ""
        log(f"{prefix}: unchanged since its last success, skipped{note}")
        return {"status": "skipped", "wall_s": stamp.get("wall_s")}
    if reason.endswith("wrote it"):  # an output changed under a valid stamp
        log(f"{prefix}: {reason}: rerunning {stage.name} ...")
    else:
        log(f"{prefix}: running ({reason}) ...")
    path.unlink(missing_ok=True)
    data_sets = record(stage.reads, data, fingerprints=False)  # what it writes: below
    followed = data / "executed" / f".{stage.name}.progress"
    cpu_before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with followed_progress(followed, prefix, log):
        run_stage(stage, p, executed, followed)
    wall, cpu = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    times = {"wall_s": round(wall, 2), "user_s": round(cpu.ru_utime - cpu_before.ru_utime, 2),
             "sys_s": round(cpu.ru_stime - cpu_before.ru_stime, 2)}
    written = {}
    for entry in data_set_entries(stage.writes, data):  # as the recorded one, or not
        before = stamp.get("data_sets", {}).get(entry)
        agreement = settle(data / entry, before, prefix, log)
        written[entry] = {"agreement": agreement} if agreement else {}
        data_sets[entry] = (before if agreement and agreement["state"] != "different"
                            else record((entry,), data)[entry])
    write_stamp(path, {"hash": digest, **times, "parameters": p, "git": git_state(),
                       "cpu_dispatch": dispatch.current(),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "data_sets": data_sets,
                       **({"data_agreement": written["dataset"]["agreement"]}
                          if written.get("dataset") else {}),
                       "outputs": output_checksums(stage, data)})
    log(f"{prefix}: done in {wall:.1f} s (its kernel's CPU: user {times['user_s']:.1f} s, "
        f"system {times['sys_s']:.1f} s)")
    return {"status": "ran", **times}


@contextlib.contextmanager
def followed_progress(path: Path, prefix: str, log, every_s: float = 2.0):
    """While the block runs (a stage's kernel), log each line the kernel reports to ``path``
    (``core.progress``: an epoch's time and validation MAE, an evaluation step), prefixed;
    the file is removed after."""
    path.unlink(missing_ok=True)
    stop = threading.Event()

    def follow():
        offset, last = 0, False
        while not last:
            last = stop.wait(every_s)
            lines, offset = progress.read_from(path, offset)
            for _, message in lines:
                log(f"{prefix}: {message}")

    thread = threading.Thread(target=follow, name=f"progress of {path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)
