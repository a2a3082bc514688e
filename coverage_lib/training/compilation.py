"""``torch.compile`` for the training step, where its compile time pays back within the run.

A backbone made of many small operations (``CoverageMamba3``: two token encoders of two or
four tokens, a few thousand rows a batch) spends its CPU step in per-operation work that
inductor fuses away; a backbone of large matrix products (the MLPs) gains little. A model
class opts in with ``compiles_for_training = True``. The trainer then compiles the model's
forward (and so its backward) for the full batches of a CPU float32 run of at least
``MIN_STEPS`` optimisation steps. On the paper's 2-core machine at one thread
(``benchmarks/bench_backup_step.py``), the backup's step takes about 36 ms compiled against
94 ms eager, and the compile about 70 s with an empty inductor cache (10-25 s with a warm one):
it pays back after about 1,200 steps; ``MIN_STEPS`` leaves room for a busy machine. The paper's
backup (about 5,100 steps) compiles; the learning-curve replicates and the quick profile do not.

The compiled forward computes the same function in float32 (fused, so the last bits may
differ from the eager ones); the run records ``training_compiled`` in its history and
checkpoint. The last, shorter batch of an epoch runs eagerly (no second compile for its
shape), and so do validation and prediction. Where compiling fails (no C++ compiler), the
run says why and trains eagerly.
"""
from __future__ import annotations

import time

import torch

MIN_STEPS = 3000


def wants_compile(model, device: torch.device, precision: str, total_steps: int) -> bool:
    """Whether a run of ``total_steps`` optimisation steps compiles ``model``'s training step."""
    return (getattr(model, "compiles_for_training", False) and device.type == "cpu"
            and precision == "fp32" and total_steps >= MIN_STEPS)


class TrainingForward:
    """``model(x)`` for the training loop: compiled for batches of ``batch_size`` rows when
    ``compiled``, eager otherwise (and after a failed compile). ``used`` is what the run
    records (``training_compiled``; ``compile_s``, the first compiled step's time)."""

    def __init__(self, model, batch_size: int, compiled: bool, log=print):
        self.model, self.batch_size, self.log = model, batch_size, log
        self.compiled = torch.compile(model, dynamic=False) if compiled else None
        self.used = {"training_compiled": compiled}

    def __call__(self, x):
        if self.compiled is None or len(x) != self.batch_size:
            return self.model(x)
        if "compile_s" in self.used:
            return self.compiled(x)
        start = time.perf_counter()
        try:
            out = self.compiled(x)
        except Exception as err:  # noqa: BLE001 (inductor's errors have no common class)
            self.log(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                     f"training eagerly")
            self.compiled, self.used = None, {"training_compiled": False}
            return self.model(x)
        self.used["compile_s"] = round(time.perf_counter() - start, 1)
        return out
