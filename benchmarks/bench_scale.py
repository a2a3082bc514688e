"""A data set of 10⁷ rows: time and peak memory of generating, splitting and writing it, and of
reading it for training and for evaluation (benchmark, not a test).

    .venv/bin/python benchmarks/bench_scale.py [--rows 10000000] [--chunk-rows 1000000]
                                               [--out /tmp/d2tl-scale] [--keep]

Each step runs in its own process, so its peak resident memory (ru_maxrss) is its own. The
data set is the paper profile's (seed, fractions, ranges) with more rows; it is written under
``--out`` (about 1 kB per row: 10 GB at 10⁷ rows) and removed afterwards unless ``--keep``.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def paper_data_params() -> dict:
    return yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())["01_data"]


def step_generate(out: Path, rows: int, chunk_rows: int) -> dict:
    """The generator alone on one chunk, then the whole data set written in chunks."""
    from coverage_lib.datasets import dataset
    from coverage_lib.core import schema
    p = paper_data_params()
    n = min(rows, chunk_rows)
    dataset.generate(10_000, 0)  # warm-up: loads the gas table
    start = time.perf_counter()
    dataset.generate_rows(n, dataset.chunk_rng(p["seed"], 0))
    generate_s = time.perf_counter() - start
    id_ranges = {"frequency_ghz": p["id_frequency_ghz"], "rain_rate_mmh": p["id_rain_rate_mmh"],
                 "distance_m": p["id_distance_m"]}
    start = time.perf_counter()
    dataset.build_files(out, rows, p["seed"], p["split_fractions"], id_ranges,
                        p["edge_sinr_db"], p["implementation_gap_db"], chunk_rows)
    build_s = time.perf_counter() - start
    sizes = {kind: sum(f.stat().st_size for f in out.glob(f"*.{kind}"))
             for kind in ("json", "parquet")}
    return {"generate_rows_per_s": n / generate_s, "build_s": build_s,
            "build_rows_per_s": rows / build_s, "bytes": sizes}


def step_train_read(out: Path) -> dict:
    """What a training stage reads and builds before its first epoch: the train split's
    features and targets, the whole validation split, the normalisation and the tensors."""
    import torch

    from coverage_lib.datasets import dataset
    from coverage_lib.core import schema
    from coverage_lib.core.schema import FEATURES, TARGETS
    from coverage_lib.models.normalization import Normalizer
    start = time.perf_counter()
    train = dataset.load_split(out, "train", FEATURES + TARGETS)
    val = dataset.load_split(out, "val")
    read_s = time.perf_counter() - start
    normalizer = Normalizer.fit(train)
    x, y = normalizer.features(train), normalizer.targets(train)
    tensors = torch.as_tensor(x), torch.as_tensor(y)  # already tensors: no copy
    return {"train_rows": len(train), "val_rows": len(val), "read_s": read_s,
            "prepare_s": time.perf_counter() - start,
            "tensor_bytes": sum(t.numel() * t.element_size() for t in tensors)}


def step_evaluate_read(out: Path) -> dict:
    """What the evaluation reads: every column of the test split and of each OOD set, one at
    a time."""
    from coverage_lib.datasets import dataset
    from coverage_lib.core import schema
    start, rows = time.perf_counter(), {}
    for name in ["test"] + schema.OOD_SPLITS:
        rows[name] = len(dataset.load_split(out, name))
    return {"rows": rows, "read_s": time.perf_counter() - start}


STEPS = {"generate": step_generate, "train_read": step_train_read,
         "evaluate_read": step_evaluate_read}


def run_step(name: str, args) -> dict:
    """Run one step in a fresh process; its result with its wall time and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--step", name, "--rows", str(args.rows),
                           "--chunk-rows", str(args.chunk_rows), "--out", str(args.out)],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/d2tl-scale"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # inside a step's own process
        kwargs = {"rows": args.rows, "chunk_rows": args.chunk_rows} \
            if args.step == "generate" else {}
        result = STEPS[args.step](args.out, **kwargs)
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(json.dumps(result))
        return
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{total_gb:.1f} GB memory; {args.rows:,} rows in chunks of {args.chunk_rows:,}")
    try:
        for name in STEPS:
            result = run_step(name, args)
            print(f"{name:14s} peak RSS {result['peak_rss_gb']:6.2f} GB, wall "
                  f"{result['wall_s']:7.1f} s  {json.dumps(result)}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
