"""The data set fingerprint's tolerance, measured (benchmark, not a test): how far last-bit
differences move it, how far real changes move it, and what it costs.

    .venv/bin/python benchmarks/bench_fingerprint.py [--rows 1000000]

It generates the data set with the paper's seed under the native and the baseline CPU dispatch
(``coverage_lib.pipeline.dispatch``, each in a process of its own) and compares their bits and
fingerprints; then compares the native one with: one ulp up in every float cell, another
seed, one row fewer, and rain attenuation one part in a million stronger. Prints each one's
largest relative difference (``fingerprint.agreement``) beside the tolerance, the time to
compute a fingerprint, and the process's user and system CPU.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coverage_lib.core import storage
from coverage_lib.datasets import dataset, fingerprint
from coverage_lib.physics import propagation
from coverage_lib.pipeline import dispatch

RANGES = {"frequency_ghz": [0.5, 40.0], "rain_rate_mmh": [0.0, 40.0],
          "distance_m": [10.0, 2500.0]}
SEED = 2026


def build(folder: Path, rows: int, seed: int = SEED) -> dict:
    dataset.build_files(folder, rows, seed, [0.7, 0.15, 0.15], RANGES)
    return dataset.load_fingerprint(folder)


def build_under(which: str, folder: Path, rows: int) -> None:
    """Generate in a process of its own under the dispatch ``which``."""
    code = (f"from benchmarks.bench_fingerprint import build; from pathlib import Path; "
            f"build(Path({str(folder)!r}), {rows})")
    env = {**os.environ, **dispatch.environment(which)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   cwd=Path(__file__).resolve().parents[1])


def line(name: str, found: dict) -> str:
    worst = found["max_relative"]
    shown = "beyond measure" if worst is None else f"{worst:.3g}"
    return f"{name:<34}{found['state']:>18}{shown:>16}  {found['where']}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for which in dispatch.DISPATCHES:
            build_under(which, tmp / which, args.rows)
        native = dataset.load_fingerprint(tmp / "native")
        same_bits = (dataset.manifest_sha256(tmp / "native")
                     == dataset.manifest_sha256(tmp / "baseline"))
        print(f"{args.rows} rows, seed {SEED}; tolerance {fingerprint.RTOL:g}")
        print(f"{'compared with the native data set':<34}{'state':>18}{'largest rel.':>16}  where")
        print(line(f"baseline dispatch (bits {'equal' if same_bits else 'differ'})",
                   fingerprint.agreement(native, dataset.load_fingerprint(tmp / "baseline"))))
        frames = {s: storage.read_parquet(tmp / "native" / dataset.FILE_SPLIT_PARQUET.format(s))
                  for s in dataset.SPLIT_NAMES}
        start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        fingerprint.of_frames(frames)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cost = (time.perf_counter() - start, after.ru_utime - cpu.ru_utime,
                after.ru_stime - cpu.ru_stime)
        for frame in frames.values():
            for column in frame.columns:
                if frame[column].dtype == np.float64:
                    frame[column] = np.nextafter(frame[column].to_numpy(), np.inf)
        print(line("one ulp up in every float cell",
                   fingerprint.agreement(native, fingerprint.of_frames(frames))))
        print(line("another seed", fingerprint.agreement(native, build(tmp / "s", args.rows,
                                                                        SEED + 1))))
        print(line("one row fewer", fingerprint.agreement(native, build(tmp / "r",
                                                                         args.rows - 1))))
        real = propagation.rain_specific_attenuation_db_per_km
        propagation.rain_specific_attenuation_db_per_km = lambda f, r: real(f, r) * (1 + 1e-6)
        print(line("rain attenuation × (1 + 1e-6)",
                   fingerprint.agreement(native, build(tmp / "f", args.rows))))
        propagation.rain_specific_attenuation_db_per_km = real
        size = len(json.dumps(native))
        print(f"fingerprint of {args.rows} rows: wall {cost[0]:.2f} s, user {cost[1]:.2f} s, "
              f"system {cost[2]:.2f} s; {size / 1024:.0f} KiB as JSON")


if __name__ == "__main__":
    main()
