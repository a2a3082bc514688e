"""The physics backup's (CoverageMamba3's) training step at one CPU thread (benchmark, not a
test): rows per second of forward, backward and optimiser step at the paper's batch size, with
user and system CPU time and the warm-up (compile) time, for

- "two mixers": each bidirectional layer calling its two Mamba-3 mixers one after the other
  (the backbone before issue 29's speed-up; kept here as the reference);
- "stacked": both directions as one computation (``mamba3.stacked_forward``), eager;
- "stacked, compiled": the same under ``torch.compile``, as the trainer runs it
  (``training.compilation``); its warm-up is the compile.

The relative difference of the compiled step's loss and gradients from the eager ones is
printed too (float32 round-off expected).

Run on an otherwise idle machine: ``.venv/bin/python benchmarks/bench_backup_step.py``.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from coverage_lib.core.machine import machine, machine_line
from coverage_lib.datasets import dataset
from coverage_lib.models import mamba_backbone
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


def two_mixers(layer, x):
    """The bidirectional layer as it was: each direction's mixer on its own."""
    h = layer.norm(x)
    return x + (layer.forward_scan(h) + layer.backward_scan(h.flip(1)).flip(1))


def gradient_gap(model, compiled, x, y) -> float:
    """Largest relative difference of the compiled loss's gradients from the eager ones."""
    grads = []
    for forward in (model, compiled):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(forward(x[:512]), y[:512]).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))
               for a, b in zip(*grads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line(machine()))
    frame = dataset.generate(30_000, seed=0)
    normalizer = Normalizer.fit(frame)
    x, y = normalizer.features(frame), normalizer.targets(frame)

    def fresh():
        torch.manual_seed(0)
        return CoverageMamba3(normalizer.to_dict(), Mamba3Config()).train()

    print(f"{'form':<34}{'rows/s':>10}{'ms/step':>9}{'user s':>8}{'sys s':>8}{'warm-up s':>10}")
    stacked = mamba_backbone.MambaLayer.forward
    forms = {"two mixers (before), eager": (two_mixers, False),
             "stacked, eager": (stacked, False)}
    if not args.no_compile:
        forms["stacked, compiled"] = (stacked, True)
    models = {}
    for round_ in range(args.rounds):   # the forms in turn, so that drifts hit each alike
        for label, (layer_forward, compiled) in forms.items():
            mamba_backbone.MambaLayer.forward = layer_forward
            if label not in models:
                model = fresh()
                models[label] = (model, torch.compile(model, dynamic=False) if compiled else model)
            measure(f"{label} [{round_ + 1}]", models[label][1], x, y, args.steps)
    mamba_backbone.MambaLayer.forward = stacked
    if not args.no_compile:
        model, compiled = models["stacked, compiled"]
        print(f"compiled vs eager gradients: largest relative difference "
              f"{gradient_gap(model, compiled, x, y):.1e}")


if __name__ == "__main__":
    main()
