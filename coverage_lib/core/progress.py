"""A running stage's progress, for the pipeline to show while papermill runs its notebook.

A notebook's kernel cannot print to the pipeline's terminal, so the library reports progress
lines (an epoch's time and validation MAE, an evaluation step) to the file named by
``$COVERAGE_PROGRESS_FILE``, which the pipeline sets for each stage's kernel and follows while
the stage runs (``pipeline.execution``). Run by hand, where the variable is not set, a report
is a no-op: the notebook shows its own progress.
"""
from __future__ import annotations

import os
import time

ENV = "COVERAGE_PROGRESS_FILE"


def report(message: str) -> None:
    """Append one line, ``message`` (stamped with the wall clock), to the stage's progress
    file; nothing when no pipeline follows this process."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:  # one short line: appended whole
        fh.write(f"{time.time():.3f} {' '.join(str(message).split())}\n")


def read_from(path, offset: int) -> tuple[list[tuple[float, str]], int]:
    """The complete lines written to ``path`` after byte ``offset``, as (time, message), and
    the offset to read from next; ([], offset) while the file does not exist."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return [], offset
    complete = chunk[:chunk.rfind(b"\n") + 1]
    lines = []
    for raw in complete.decode("utf-8", errors="replace").splitlines():
        stamp, _, message = raw.partition(" ")
        try:
            lines.append((float(stamp), message))
        except ValueError:
            lines.append((time.time(), raw))
    return lines, offset + len(complete)
