"""Timings on a quiet machine: the evaluation's serving timings wait until no replicate stage of
the same run is computing, and no replicate stage starts while they run.

A paper run trains and evaluates its replicate chains beside the main run (``pipeline.fanout``),
so a timing taken while a chain trains measures the model on a shared CPU: the same code's
verdicts flipped between runs. The rule is a readers–writer lock on one file of the run's folder
(the kernel's ``flock``, released however its holder ends): a replicate chain holds it shared
while one of its stages computes (``computing``), the evaluation holds it exclusive around its
timings (``timing``). The timings thus wait for the stages that are running and hold off new
ones until done; a chain waiting for the main run (its evaluation refits the main run's
LightGBM choice) holds nothing, so the wait ends. Outside the pipeline (a notebook run by hand,
the quick profile) nothing holds it and the timings start at once. On a Dask cluster of other
machines the lock still orders them (``flock`` over NFS is a POSIX lock); their load was never
this machine's anyway.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from ..core.paths import resolve

LOCK_FILE = ".timing.lock"


@contextlib.contextmanager
def _held(folder, mode: int, waiting: str, log):
    """Hold ``flock`` ``mode`` on ``folder``'s lock file; yields the seconds it waited (after
    logging ``waiting`` when it had to)."""
    path = Path(resolve(folder)) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start = time.perf_counter()
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            log(waiting)
            fcntl.flock(fd, mode)
        yield time.perf_counter() - start
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def timing(run_folder, log=print):
    """Hold the run's lock exclusive: no replicate stage of the run in ``run_folder``
    (``data/<profile>``) computes meanwhile. Yields the seconds it waited for them."""
    with _held(run_folder, fcntl.LOCK_EX, "timings: waiting until no replicate stage of this "
               "run is computing", log) as waited:
        if waited > 1.0:
            log(f"timings: the machine is quiet after {waited:.0f} s")
        yield waited


@contextlib.contextmanager
def computing(run_folder, log=print):
    """Hold the run's lock shared while a replicate stage computes: several stages at once,
    never beside the main run's timings."""
    with _held(run_folder, fcntl.LOCK_SH, "waiting for the main run's timings to finish",
               log) as waited:
        yield waited
