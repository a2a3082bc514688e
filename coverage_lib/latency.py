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


def _network(model):
    def run(x):
        with torch.inference_mode():
            return model(x)
    return run


def _scanned(model, scan):
    def run(x):
        with scan_form(model, scan), torch.inference_mode():
            return model(x)
    return run


def _frame(features):
    return features


def backbone_variants(name: str, model) -> dict:
    """The timed forms of one backbone: for a Mamba-3, ``predict`` and the network under each
    CPU scan form (the fused mamba-ssm kernel needs CUDA); for any other network, ``predict``,
    the network in eager mode and, where the model offers ``inference_module``, as frozen
    TorchScript. Networks time on a prepared normalised tensor."""
    tensor = model.normalizer.features
    if any(isinstance(m, Mamba3) for m in model.modules()):
        return {(name, "predict (parallel scan)"): (model.predict, _frame),
                (name, "network, parallel scan"): (_scanned(model, "parallel"), tensor),
                (name, "network, recurrent scan"): (_scanned(model, "recurrent"), tensor)}
    out = {(name, "predict"): (model.predict, _frame),
           (name, "network, eager"): (_network(model), tensor)}
    if hasattr(model, "inference_module"):
        out[(name, "network, frozen TorchScript")] = (model.inference_module(), tensor)
    return out


def variants(models) -> dict:
    """Every timed variant of an ``evaluation.Models``: each registered backbone
    (``backbone_variants``), the Selector's ``predict``, LightGBM's ``predict`` and its raw
    boosters on a numpy array."""
    from . import registry

    out = {}
    for key, model in models.backbones.items():
        out.update(backbone_variants(registry.get(key).name, model))
    some_network = next(iter(models.backbones.values()))
    out[("Selector", "predict")] = (models.selector.predict, _frame)
    out[("LightGBM", "predict")] = (models.lightgbm.predict, _frame)
    out[("LightGBM", "boosters on numpy")] = (
        lambda x: [b.predict(x) for b in models.lightgbm.boosters.values()],
        lambda f: some_network.normalizer.features(f).numpy())
    return out


UNITS = {"median_ms": "ms", "us_per_row": "µs/row", "rows_per_s": "rows/s"}


def table(rows: list, values=("median_ms",)) -> pd.DataFrame:
    """``measure``'s rows (or metrics.json's ``latency``) as a table: a row per model and
    variant, a column per batch size (per value and batch size if several ``values``)."""
    frame = pd.DataFrame(rows).pivot_table(index=["model", "variant"], columns="batch",
                                           values=list(values), sort=False)
    if len(values) > 1:
        return frame
    return frame[values[0]].rename(columns=lambda b: f"batch {b} [{UNITS[values[0]]}]")
