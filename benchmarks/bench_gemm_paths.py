"""Whose fp32 GEMM is "the peak"? (benchmark, not a test.)

The run's efficiency lines and the serving roofline divide by PyTorch's one-thread fp32 GEMM
rate (``machine.gemm_peak_gflops``). ``bench_api.py`` already reports ONNX Runtime above that
roofline; this benchmark adds the check that matters for reading it: the same CoverageMLP
(13 → 256×8 → 5, batch 4096) run by PyTorch and by ONNX Runtime (its own GEMM kernels), each
at one intra-op thread, with the process's CPU time over wall time, showing that one thread is
what each used. Where ONNX Runtime then runs the MLP faster than PyTorch's GEMM rate allows,
that rate is not the CPU's peak.

    .venv/bin/python benchmarks/bench_gemm_paths.py [--checkpoint data/paper/models/best_mlp_coverage.pth] [--repeats 200]
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from coverage_lib.core import machine
from coverage_lib.core.schema import FEATURES
from coverage_lib.datasets import dataset
from coverage_lib.evaluation import latency, serving
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer
from coverage_lib.training import checkpoint_io

BATCH = 4096


def timed(call, repeats: int) -> tuple[float, float]:
    """(calls per second, process CPU seconds per wall second) over ``repeats`` calls."""
    for _ in range(max(5, repeats // 10)):
        call()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(repeats):
        call()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return repeats / wall, cpu / wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a trained CoverageMLP (default: random weights)")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    links = dataset.generate(2000, 0)
    model = (checkpoint_io.load_checkpoint(args.checkpoint)["model"] if args.checkpoint else
             CoverageMLP(Normalizer.fit(links).to_dict(), MLPConfig())).eval()
    flops = latency.linear_flops_per_row(model)
    print(machine.machine_line(machine.machine()))
    print(f"CoverageMLP: {flops / 1e6:.3f} MFLOP per row; batch {BATCH}; one thread each")

    gemm = machine.gemm_peak_gflops()
    print(f"PyTorch's GEMM peak (machine.gemm_peak_gflops)  {gemm:7.1f} GFLOP/s")

    x = torch.randn(BATCH, len(FEATURES))
    with torch.inference_mode():
        rate, share = timed(lambda: model(x), args.repeats)
    print(f"CoverageMLP, PyTorch eager           {flops * BATCH * rate / 1e9:7.1f} GFLOP/s   "
          f"CPU/wall {share:.2f}   {BATCH * rate:,.0f} rows/s")

    with tempfile.TemporaryDirectory() as folder:
        path = serving.export_onnx(model, Path(folder) / "mlp.onnx", links[FEATURES])
        session = serving.ort_session(path, threads=1)
        name = session.get_inputs()[0].name
        feed = {name: x.numpy()}
        rate, share = timed(lambda: session.run(None, feed), args.repeats)
    ort = flops * BATCH * rate / 1e9
    print(f"CoverageMLP, ONNX Runtime            {ort:7.1f} GFLOP/s   "
          f"CPU/wall {share:.2f}   {BATCH * rate:,.0f} rows/s")
    print(f"ONNX Runtime / PyTorch's GEMM rate: {ort / gemm:.2f}"
          + ("  (above 1: PyTorch's GEMM rate is not this CPU's peak)" if ort > gemm else ""))


if __name__ == "__main__":
    main()
