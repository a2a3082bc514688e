"""The machine results were measured on: CPU, cores, torch threads, CUDA device, native bf16,
the SIMD kernels numpy and PyTorch dispatch to."""
from __future__ import annotations

import os
import platform
import statistics
import time

import torch


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
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            **simd()}


def simd() -> dict:
    """Which SIMD kernels this process computes with: PyTorch's ISA
    (``ATEN_CPU_CAPABILITY`` forces one) and the features numpy dispatches on
    (``NPY_DISABLE_CPU_FEATURES`` turns found ones off). Results differ in their last bits
    between these."""
    import numpy as np

    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "numpy_simd": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
            "numpy": np.__version__}


def machine_line(machine: dict) -> str:
    """``machine()`` in one line: CPU, its count, torch and its threads."""
    return (f"{machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']} with "
            f"{machine['torch_threads']} threads")


def cpu_flags() -> list:
    """The CPU's vector features that decide the GEMM peak (AVX2, AVX-512 and its bf16 and
    VNNI extensions, AMX), from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx2", "avx512", "amx")))


def bf16_native() -> bool:
    """Whether this CPU multiplies bf16 in hardware (avx512_bf16 or AMX). Without it torch's
    bf16 GEMM is emulated, several times slower than fp32 (measured on an AVX2-only EPYC, 2
    threads: 17–21 GFLOP/s against ~180), so bf16 is not timed there."""
    return any(f in ("avx512_bf16", "amx_bf16") for f in cpu_flags())


def gemm_peak_gflops(dtype=torch.float32, max_size: int = 2048, repeats: int = 5) -> float:
    """This machine's matrix-multiply peak: GFLOP/s of a square (size × size) product in
    ``dtype`` as ``nn.Linear`` computes it (x·Wᵀ: torch's bf16 ``mm`` without the transposed
    layout is ten times slower on CPUs without bf16 hardware), torch's threads, median of
    ``repeats`` after one warm-up. The size doubles from 256 until one product takes 50 ms or
    ``max_size`` is reached, so a slow (emulated) precision is measured in seconds. The
    roofline's ceiling."""
    size = 256
    while True:
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        torch.nn.functional.linear(a, b)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.linear(a, b)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        if seconds >= 0.05 or 2 * size > max_size:
            return 2.0 * size ** 3 / seconds / 1e9
        size *= 2
