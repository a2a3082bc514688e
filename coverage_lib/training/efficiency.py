"""How close a training run came to the machine: the matrix-product FLOPs of its epochs
(``torch.utils.flop_counter``, which counts matrix products, the bulk of both backbones' work,
and not element-wise operations) over their wall time, against this machine's GEMM peak at the
same thread count (``core.machine.gemm_peak_gflops``)."""
from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..core.machine import gemm_peak_gflops


def matmul_flops(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> int:
    """The matrix-product FLOPs of ``model`` over the rows ``x``: its forward pass, and its
    backward pass too when ``backward``. The model's gradients are cleared after."""
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(x).float().square().mean().backward()
        else:
            with torch.no_grad():
                model(x)
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def training_efficiency(model: torch.nn.Module, x_train: torch.Tensor, n_val: int,
                        batch_size: int, epoch_times_s: list, measure_peak: bool) -> dict:
    """Achieved GFLOP/s of the epochs in ``epoch_times_s`` (every optimiser step over the
    training rows, forward and backward, and the validation forward over ``n_val`` rows),
    and with ``measure_peak`` (a CPU run) the fp32 GEMM peak now at torch's thread count and
    the fraction of it reached."""
    batch = x_train[:batch_size].detach().cpu()
    steps = math.ceil(len(x_train) / batch_size)
    per_row_forward = matmul_flops(model, batch, backward=False) / len(batch)
    per_epoch = steps * matmul_flops(model, batch, backward=True) + n_val * per_row_forward
    achieved = per_epoch * len(epoch_times_s) / sum(epoch_times_s) / 1e9
    out = {"matmul_flops_per_epoch": per_epoch, "achieved_gflops": round(achieved, 3),
           "threads": torch.get_num_threads()}
    if measure_peak:
        peak = gemm_peak_gflops(torch.float32)
        out.update(gemm_peak_gflops=round(peak, 3), fraction_of_peak=round(achieved / peak, 4))
    return out
