"""Locks: one run per profile (``profile_lock``), one chain per folder (``folder_lock``).

Both are the kernel's (``flock``: taken atomically, released when the process ends, however it
ends), taken without waiting by ``exclusive_lock``: a second taker is refused at once with
``PipelineBusy``.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..core.paths import resolve
from .definitions import data_dir_of


class PipelineBusy(RuntimeError):
    """Another run of the same profile holds its lock; the message names it."""


LOCK_FILE = ".pipeline.lock"


def _pid_alive(pid) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def exclusive_lock(path: Path, busy):
    """Hold an exclusive ``flock`` on ``path`` (created if missing), yielding its file
    descriptor; held elsewhere → ``PipelineBusy(busy(fd))`` at once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusy(busy(fd)) from None
        yield fd
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def profile_lock(profile: str, log=print):
    """Hold ``data/<profile>/.pipeline.lock`` for the duration of a run: one run per profile.

    The file says who holds it (PID, host, start time, command). A second run is refused at
    once with ``PipelineBusy`` naming the running one. A file whose holder is gone (a run
    killed with SIGKILL) is taken over with a warning.
    """
    data = resolve(data_dir_of(profile))
    data.mkdir(parents=True, exist_ok=True)
    path = data / LOCK_FILE

    def busy(fd) -> str:
        holder = _read_lock(fd)
        return (f"profile {profile!r} is already being run by PID {holder.get('pid', '?')} "
                f"on {holder.get('host', '?')} (started {holder.get('started', '?')}: "
                f"{holder.get('command', '?')}); it holds {path}. Wait for it to finish, or "
                f"stop it, then run again.")

    with exclusive_lock(path, busy) as fd:
        earlier = _read_lock(fd)
        if earlier.get("pid") not in (None, os.getpid()):
            state = "no longer running" if not _pid_alive(earlier["pid"]) else \
                "not holding the lock"
            log(f"warning: taking over the lock of an earlier run of profile {profile!r} "
                f"(PID {earlier['pid']}, started {earlier.get('started', '?')}), "
                f"{state}: it was interrupted")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(sys.argv) or "python"}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # an empty file: nobody holds it


def _read_lock(fd) -> dict:
    """Who holds the lock file ``fd``, as its holder wrote it; {} when nobody."""
    raw = os.pread(fd, 4096, 0)
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except ValueError:
        holder = {"pid": "?", "started": "unreadable lock file"}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def folder_lock(folder: Path, what: str):
    """An exclusive ``flock`` on ``folder/.chain.lock`` while a chain (``what``) runs there."""
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder / ".chain.lock",
                        lambda fd: f"{what} is already running in {folder}"):
        yield
