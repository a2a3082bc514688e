"""Atomic file writes (a reader sees the old file or the new one, never half of one) and the
one reader and writer of the project's format-tagged JSON files (``read_json``,
``write_json``): metrics.json, replicate.json, seeds.json, the Selector's thresholds."""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, payload: bytes) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, fsync it, then rename it over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path) -> str:
    """The sha256 of a file's bytes, read in 4 MiB blocks (files of any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def json_safe(value):
    """JSON-safe: NaN and ±inf → None, numpy scalars → Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path, payload: dict) -> Path:
    """``payload`` as JSON (``json_safe``: NaN and inf as null), written atomically; the twin
    of ``read_json`` (``payload`` carries its own "format")."""
    return atomic_write_text(path, json.dumps(json_safe(payload), indent=1, sort_keys=True,
                                              allow_nan=False) + "\n")


def read_json(path, fmt: str, what: str, hint: str) -> dict:
    """A JSON file whose "format" is ``fmt``: ValueError naming the file if it is missing or is
    not ``what`` (another format, or not a JSON object), with ``hint``: what makes it anew."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: {hint}")
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise ValueError(f"{path} is not {what} (format {fmt!r}, found {found!r}): {hint}")
    return payload
