"""The CPU dispatch a run's kernels compute with: this CPU's own SIMD kernels ("native"), or
the baseline every x86-64 CPU of the last decade runs ("baseline"), to compute on one machine
as another CPU would.

numpy picks its float64 kernels (``exp``, ``log``, ``power``, trigonometry) by the CPU's SIMD
features, and PyTorch its ATen kernels by ISA: the same code gives other last bits on another
CPU. ``--cpu-dispatch baseline`` (``run`` and ``verify``) starts every notebook kernel, in this
process, on a local Dask worker or on a remote one (each computes its own), with

- ``NPY_DISABLE_CPU_FEATURES``: every feature numpy dispatches on (its
  ``__cpu_dispatch__``: on x86-64 ``X86_V3 X86_V4 AVX512_ICL AVX512_SPR``), found or not;
- ``ATEN_CPU_CAPABILITY=default``: PyTorch's kernels (its matrix products included) at their
  baseline;
- ``ONEDNN_MAX_CPU_ISA=SSE41`` and ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``: oneDNN's and MKL's
  own dispatch, where they are used (on this project's AMD EPYC neither changed a bit of an MLP
  step: PyTorch's matrix products follow ``ATEN_CPU_CAPABILITY`` there).

The run's own process keeps its dispatch: it only compares results, by tolerance.
"""
from __future__ import annotations

import contextlib
import os

DISPATCHES = ("native", "baseline")
ENV = "COVERAGE_CPU_DISPATCH"  # the dispatch of the kernels this process starts


def numpy_dispatched() -> list[str]:
    """The SIMD features numpy dispatches on (found on this CPU or not)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__
    return list(__cpu_dispatch__)


def environment(dispatch: str) -> dict:
    """The environment variables a kernel starts with under ``dispatch``."""
    check(dispatch)
    if dispatch == "native":
        return {}
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(numpy_dispatched()),
            "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


def check(dispatch) -> str:
    """``dispatch`` if it is one of ``DISPATCHES``; else ValueError naming it."""
    if dispatch not in DISPATCHES:
        raise ValueError(f"cpu_dispatch must be one of {list(DISPATCHES)}; got {dispatch!r}")
    return dispatch


def current() -> str:
    """The dispatch this process gives the kernels it starts (``ENV``; native by default)."""
    return check(os.environ.get(ENV) or "native")


def kernel_environment(environ: dict) -> dict:
    """``environ`` with the variables of its dispatch (``ENV`` in it) applied."""
    return {**environ, **environment(check(environ.get(ENV) or "native"))}


@contextlib.contextmanager
def kernels_under(dispatch: str):
    """Kernels started meanwhile (and Dask workers, which inherit this process's environment)
    compute under ``dispatch``."""
    check(dispatch)
    before = os.environ.get(ENV)
    os.environ[ENV] = dispatch
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
