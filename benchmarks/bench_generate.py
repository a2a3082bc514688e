"""Data-generation throughput and the quick profile's wall time (benchmark, not a test).

    .venv/bin/python benchmarks/bench_generate.py [--rows 1000000] [--repeats 3] [--pipeline]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from coverage_lib.datasets import dataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pipeline", action="store_true",
                        help="also time `python -m coverage_lib run --profile quick --force`")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    dataset.generate(10_000, 0)  # warm-up: loads the gas table
    times = []
    for r in range(args.repeats):
        start = time.perf_counter()
        dataset.generate(args.rows, r)
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    print(f"generate({args.rows}): median {median:.2f} s, best {best:.2f} s -> "
          f"{args.rows / median:,.0f} rows/s (median)")
    if args.pipeline:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "coverage_lib", "run", "--profile", "quick",
                        "--force"], check=True)
        print(f"quick profile, all stages forced: {time.perf_counter() - start:.1f} s wall")


if __name__ == "__main__":
    main()
