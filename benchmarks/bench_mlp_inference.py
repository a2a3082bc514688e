"""CoverageMLP inference latency and throughput on this machine (benchmark, not a test).

Median of repeated timings after warm-up, for batch 1 and batch 4096, across the ways one
can run the same weights: eager, eager under inference_mode, frozen TorchScript, and
torch.compile (inductor). Prints the torch thread count.

    .venv/bin/python benchmarks/bench_mlp_inference.py [--checkpoint data/paper/models/best_mlp_coverage.pth]
"""
import argparse

import torch

from coverage_lib.datasets import dataset
from coverage_lib.training import checkpoint_io
from coverage_lib.evaluation.latency import median_seconds
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.evaluation.serving import torchscript_network
from coverage_lib.models.normalization import Normalizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a trained checkpoint (default: random weights)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        model = checkpoint_io.load_checkpoint(args.checkpoint)["model"]
    else:
        model = CoverageMLP(Normalizer.fit(dataset.generate(2000, 0)).to_dict(), MLPConfig())
    model.eval()

    def eager(x):
        return model(x)

    def eager_inference(x):
        with torch.inference_mode():
            return model(x)

    variants = {"eager": eager, "eager + inference_mode": eager_inference,
                "frozen TorchScript (serving.torchscript_network)": torchscript_network(model)}
    if not args.no_compile:
        compiled = torch.compile(model, dynamic=False)

        def compiled_fn(x):
            with torch.inference_mode():
                return compiled(x)
        variants["torch.compile (inductor)"] = compiled_fn

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, fn in variants.items():
        one = median_seconds(fn, torch.randn(1, 13), repeats=2000, warmup=50)
        big = median_seconds(fn, torch.randn(4096, 13), repeats=50, warmup=5)
        print(f"{name:>40}: batch 1 {one * 1e6:7.1f} µs median; "
              f"batch 4096 {4096 / big:12,.0f} rows/s")


if __name__ == "__main__":
    main()
