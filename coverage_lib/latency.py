"""Inference latency on this machine: the median of repeated timings after warm-up.

Each variant is a callable taking one prepared input (a DataFrame for the prediction APIs, a
normalised tensor for the bare networks). ``measure`` times it at each batch size and
returns one row per (variant, batch): median seconds per call, microseconds per row, rows
per second. Timings vary run to run; notebooks mark the cells that print them for nbval.
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time

import pandas as pd
import torch

from .dataset import FEATURES
from .models.mamba3 import Mamba3


def median_seconds(fn, arg, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn(arg)`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn(arg)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(variants: dict, rows: pd.DataFrame, batches=(1, 4096), repeats: dict | None = None,
            warmup: int = 5) -> pd.DataFrame:
    """Time every variant at every batch size on the first ``batch`` rows of ``rows``.

    ``variants`` maps (model, variant) to (fn, prepare): ``prepare(features DataFrame)``
    builds the input once, outside the timing; ``fn(input)`` is timed. ``repeats`` maps a
    batch size to its number of timed calls (default: 200 for batch 1, 20 otherwise).
    """
    if len(rows) < max(batches):
        raise ValueError(f"rows has {len(rows)} rows; the largest batch needs {max(batches)}")
    repeats = repeats or {}
    out = []
    for (model, variant), (fn, prepare) in variants.items():
        for batch in batches:
            arg = prepare(rows[FEATURES].iloc[:batch].reset_index(drop=True))
            n = repeats.get(batch, 200 if batch == 1 else 20)
            seconds = median_seconds(fn, arg, repeats=n, warmup=warmup)
            out.append({"model": model, "variant": variant, "batch": batch,
                        "median_ms": 1e3 * seconds, "us_per_row": 1e6 * seconds / batch,
                        "rows_per_s": batch / seconds, "repeats": n})
    return pd.DataFrame(out)


@contextlib.contextmanager
def scan_form(model: torch.nn.Module, scan: str):
    """Run every Mamba-3 block of ``model`` with scan form ``scan`` inside the block."""
    blocks = [m for m in model.modules() if isinstance(m, Mamba3)]
    before = [m.scan for m in blocks]
    try:
        for m in blocks:
            m.scan = scan
        yield model
    finally:
        for m, scan_before in zip(blocks, before):
            m.scan = scan_before


def machine() -> dict:
    """What the timings ran on: CPU, core count, torch threads, CUDA device if any."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
