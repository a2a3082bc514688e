"""The physics backup's (CoverageMamba3's) training step at one CPU thread (benchmark, not a
test): rows per second of forward, backward and optimiser step at the paper's batch size,
eager and with ``torch.compile``, with user and system CPU time and the compile time.

Run on an otherwise idle machine: ``.venv/bin/python benchmarks/bench_backup_step.py``.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from coverage_lib.core.machine import machine, machine_line
from coverage_lib.datasets import dataset
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config
from coverage_lib.models.normalization import Normalizer


def steps(model, x, y, n: int, optimiser) -> None:
    for i in range(n):
        rows = slice((i * 512) % (len(x) - 512), (i * 512) % (len(x) - 512) + 512)
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x[rows]), y[rows])
        loss.backward()
        optimiser.step()


def measure(label: str, model, x, y, n: int) -> None:
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    steps(model, x, y, 3, optimiser)  # warm-up (and the compile, if any)
    warm = time.perf_counter() - start
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    steps(model, x, y, n, optimiser)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    print(f"{label:<34}{n * 512 / wall:>10,.0f}{wall / n * 1000:>9.1f}{user:>8.2f}"
          f"{system:>8.2f}{warm:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line(machine()))
    frame = dataset.generate(30_000, seed=0)
    normalizer = Normalizer.fit(frame)
    torch.manual_seed(0)
    model = CoverageMamba3(normalizer.to_dict(), Mamba3Config())
    x, y = normalizer.features(frame), normalizer.targets(frame)
    print(f"{'form':<34}{'rows/s':>10}{'ms/step':>9}{'user s':>8}{'sys s':>8}{'warm-up s':>10}")
    measure("eager", model.train(), x, y, args.steps)
    if args.compile:
        measure("torch.compile", torch.compile(model.train()), x, y, args.steps)


if __name__ == "__main__":
    main()
