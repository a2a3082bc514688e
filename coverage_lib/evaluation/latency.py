"""Inference latency on this machine: the median of repeated timings after warm-up, with their
interquartile range.

Each variant is a callable taking one prepared input (a DataFrame for the prediction APIs, a
normalised tensor for the bare networks). ``measure`` times it at each batch size and
returns one row per (variant, batch): median milliseconds per call and the first and third
quartiles of the calls (the spread a verdict on it is read against: ``paper_goals``),
microseconds per row, rows per second. Timings vary run to run; notebooks mark the cells that
print them for nbval. The pipeline takes them on a quiet machine (``quiet``).
"""
from __future__ import annotations

import contextlib
import statistics
import time

import pandas as pd
import torch

from ..core.schema import FEATURES
from ..core.machine import bf16_native
from ..models.mamba3 import Mamba3
from . import serving
from ..models import registry


WARMUP_BUDGET_S = 0.5  # warm-up stops after this long, once at least one call has run


def median_seconds(fn, arg, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn(arg)`` over ``repeats`` calls, after ``warmup`` calls (fewer
    when they take over WARMUP_BUDGET_S; at least one: slow calls need no five warm-ups)."""
    return quartile_seconds(fn, arg, repeats, warmup)[1]


def quartile_seconds(fn, arg, repeats: int, warmup: int) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of the wall times of ``fn(arg)`` over
    ``repeats`` calls, after the warm-up of ``median_seconds``."""
    start = time.perf_counter()
    for i in range(warmup):
        fn(arg)
        if time.perf_counter() - start > WARMUP_BUDGET_S:
            break
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    if len(times) < 2:
        return times[0], times[0], times[0]
    low, median, high = statistics.quantiles(times, n=4, method="inclusive")
    return low, median, high


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
            low, seconds, high = quartile_seconds(fn, arg, repeats=n, warmup=warmup)
            out.append({"model": model, "variant": variant, "batch": batch,
                        "median_ms": 1e3 * seconds, "p25_ms": 1e3 * low, "p75_ms": 1e3 * high,
                        "us_per_row": 1e6 * seconds / batch,
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


def _network(model, precision="fp32"):
    def run(x):
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16,
                                                    enabled=precision == "bf16"):
            return model(x)
    return run


def _scanned(model, scan):
    def run(x):
        with scan_form(model, scan), torch.inference_mode():
            return model(x)
    return run


def _frame(features):
    return features


def _array(features):
    return features.to_numpy(dtype=float)


def backbone_variants(name: str, model, onnx_path=None, bf16: bool | None = None) -> dict:
    """The timed forms of one backbone: ``predict`` (DataFrame) and ``predict_array``, the
    network in eager mode (for a Mamba-3, under each CPU scan form: the fused mamba-ssm
    kernel needs CUDA) and as frozen TorchScript, in ONNX Runtime if ``onnx_path`` (its
    ``serving.export_onnx``) is given, and for a plain network in bf16 autocast where ``bf16``
    (default: where the CPU has it natively, ``bf16_native``). Networks time on a prepared
    normalised tensor (ONNX Runtime on its float32 array)."""
    tensor = model.normalizer.features
    out = {(name, "predict"): (model.predict, _frame),
           (name, "predict_array"): (model.predict_array, _array)}
    if any(isinstance(m, Mamba3) for m in model.modules()):
        out[(name, "network, parallel scan")] = (_scanned(model, "parallel"), tensor)
        out[(name, "network, recurrent scan")] = (_scanned(model, "recurrent"), tensor)
    else:
        out[(name, "network, eager")] = (_network(model), tensor)
        if not hasattr(model, "law") and (bf16_native() if bf16 is None else bf16):
            out[(name, "network, eager bf16")] = (_network(model, "bf16"), tensor)
    out[(name, "network, frozen TorchScript")] = (
        _Lazy(lambda: serving.torchscript_network(model)), tensor)
    if onnx_path is not None:
        out[(name, "network, ONNX Runtime")] = (
            _Lazy(lambda: serving.onnx_backbone(model, onnx_path).network),
            lambda f: tensor(f).numpy())
    return out


class _Lazy:
    """A timed callable built on its first call (tracing and session set-up stay out of the
    timings: ``measure`` warms up first)."""

    def __init__(self, build):
        self.build, self.fn = build, None

    def __call__(self, x):
        if self.fn is None:
            self.fn = self.build()
        return self.fn(x)


def variants(models, onnx_paths: dict | None = None) -> dict:
    """Every timed variant of a ``scoring.Models``: each registered backbone
    (``backbone_variants``, in ONNX Runtime where ``onnx_paths`` {key: path} has it), the
    Selector's ``predict`` and ``predict_array`` (and ``predict`` on TorchScript-served
    backbones: ``serving.served_selector``), LightGBM's ``predict`` and its raw boosters
    on a numpy array (where loaded)."""
    out = {}
    for key, model in models.backbones.items():
        out.update(backbone_variants(registry.get(key).name, model,
                                     (onnx_paths or {}).get(key)))
    some_network = next(iter(models.backbones.values()))
    out[("Selector", "predict")] = (models.selector.predict, _frame)
    out[("Selector", "predict_array")] = (models.selector.predict_array, _array)
    out[("Selector", "predict, TorchScript backbones")] = (
        _Lazy(lambda: serving.served_selector(models.selector).predict), _frame)
    if models.lightgbm is None:
        return out
    out[("LightGBM", "predict")] = (models.lightgbm.predict, _frame)
    out[("LightGBM", "boosters on numpy")] = (
        lambda x: [b.predict(x) for b in models.lightgbm.boosters.values()],
        lambda f: some_network.normalizer.features(f).numpy())
    return out


def linear_flops_per_row(model) -> float:
    """FLOPs per row of the network's Linear layers (2·in·out each): the MLP's work, all but
    its norms and activations."""
    return float(sum(2 * m.in_features * m.out_features for m in model.modules()
                     if isinstance(m, torch.nn.Linear)))


def roofline(timings: list, model_name: str, flops_per_row: float, peaks: dict,
             batch: int = 4096) -> list:
    """Per timed variant of ``model_name`` at ``batch``: rows/s, the roofline (GEMM peak of the
    variant's precision / FLOPs per row), the fraction of it reached and, for a timing with
    quartiles, that fraction's range over them (``fraction_spread``)."""
    out = []
    for r in timings:
        if r["model"] != model_name or r["batch"] != batch:
            continue
        precision = "bf16" if "bf16" in r["variant"] else "fp32"
        ceiling = peaks[precision] * 1e9 / flops_per_row
        row = {"variant": r["variant"], "precision": precision,
               "rows_per_s": r["rows_per_s"], "roofline_rows_per_s": ceiling,
               "fraction_of_roofline": r["rows_per_s"] / ceiling}
        if "p25_ms" in r:  # the slowest quartile of calls first
            row["fraction_spread"] = [batch / (1e-3 * r[q]) / ceiling for q in ("p75_ms", "p25_ms")]
        out.append(row)
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
