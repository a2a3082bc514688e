"""Forward+backward time of the Mamba-3 scan forms on CPU: parallel (L×L) vs recurrent (loop).

Setting of this book: a 13-feature tabular row is a 13-token sequence; batch 256, float32,
2 torch threads. Times the whole block (projections, BC-norm, rotary, scan, gate, out_proj)
and the scan alone; each is the median of repeated runs after warm-up, with the two forms
interleaved so that load from other processes hits both alike. The minimum is printed too:
on a shared machine it is the figure least disturbed by other work.

Run from the repository root:  python -m benchmarks.bench_mamba3_scan
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # allow `python benchmarks/...py`
from coverage_lib.models.mamba3 import Mamba3, scan_parallel, scan_recurrent


def time_pair(step_a, step_b, warmup, repeats):
    """Seconds per call of step_a and step_b, run alternately after `warmup` calls of each."""
    for _ in range(warmup):
        step_a(), step_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for step, times in ((step_a, times_a), (step_b, times_b)):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return times_a, times_b


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=13)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=32)
    parser.add_argument("--headdim", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    block = Mamba3(args.d_model, d_state=args.d_state, headdim=args.headdim)
    u = torch.randn(args.batch, args.length, args.d_model)
    grad_out = torch.randn_like(u)      # a dense upstream gradient, as a real loss gives

    def block_step(scan):
        def step():
            block.scan = scan
            block.zero_grad(set_to_none=True)
            block(u).backward(grad_out)
        return step

    with torch.no_grad():
        scan_args, _ = block.ssm_inputs(u)
    scan_args = [a.detach().requires_grad_(True) for a in scan_args]
    grad_y = torch.randn_like(scan_args[0])

    def scan_step(scan_fn):
        return lambda: scan_fn(*scan_args).backward(grad_y)

    print(f"Mamba-3 SISO, batch {args.batch}, {args.length} tokens, d_model {args.d_model}, "
          f"d_state {args.d_state}, headdim {args.headdim} ({block.nheads} heads), float32, "
          f"{torch.get_num_threads()} threads; forward+backward, median of {args.repeats}")
    for label, par, rec in (("block", block_step("parallel"), block_step("recurrent")),
                            ("scan only", scan_step(scan_parallel), scan_step(scan_recurrent))):
        times_par, times_rec = time_pair(par, rec, args.warmup, args.repeats)
        t_par, t_rec = statistics.median(times_par), statistics.median(times_rec)
        print(f"{label:>10}: parallel {t_par * 1e3:7.2f} ms   recurrent {t_rec * 1e3:7.2f} ms   "
              f"speed-up {t_rec / t_par:5.1f}x   (min: {min(times_par) * 1e3:.2f} vs "
              f"{min(times_rec) * 1e3:.2f} ms, {min(times_rec) / min(times_par):.1f}x)")


if __name__ == "__main__":
    main()
