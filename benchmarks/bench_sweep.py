"""What the replicate chains (seeds, learning curves) cost, here and on a Dask cluster of
``--workers`` loopback workers (benchmark).

Reruns every replicate chain of a finished profile (``--force``: every stage of every chain
runs again, with the parameters the pipeline gives it) first in this process, then through a
`dask scheduler` and ``--workers`` single-threaded `dask worker` processes on 127.0.0.1, and
prints the wall time of each and whether every replicate's results (its replicate.json) came
out identical. Holds the profile's lock, so no run of that profile can start meanwhile. Run on
an otherwise idle machine.

    .venv/bin/python benchmarks/bench_sweep.py [--profile quick] [--workers 2]
        [--worker-threads 1]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coverage_lib.pipeline import definitions, locks, replicate_chains
from coverage_lib.core import paths
from coverage_lib.datasets import replicates


def digests(profile: str) -> dict:
    """{replicate: sha256 of its results but the training wall times}."""
    runs = paths.resolve(definitions.data_dir_of(profile)) / replicates.RUNS_DIR
    out = {}
    for path in sorted(runs.glob(f"*/{definitions.REPLICATE_RESULT}")):
        result = json.loads(path.read_text())
        for summary in result["training"].values():
            summary.pop("training_time_s")
        out[path.parent.parent.name] = hashlib.sha256(
            json.dumps(result, sort_keys=True).encode()).hexdigest()
    return out


def loopback_cluster(workers: int, folder: Path, threads: int | None) -> tuple[str, list]:
    """A scheduler and ``workers`` workers on 127.0.0.1; ``threads``: the CPU threads each
    worker's notebooks may use (OMP_NUM_THREADS), None for the default (every core)."""
    env = dict(os.environ, **({} if threads is None else {"OMP_NUM_THREADS": str(threads)}))
    file = str(folder / "scheduler.json")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", "0", "--scheduler-file", file],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    while not os.path.exists(file):
        time.sleep(0.2)
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                "--scheduler-file", file, "--host", "127.0.0.1", "--nthreads",
                                "1", "--no-nanny", "--no-dashboard", "--local-directory",
                                str(folder / f"w{i}")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for i in range(workers)]
    from distributed import Client
    with Client(scheduler_file=file, timeout="60s") as client:
        client.wait_for_workers(workers, timeout=60)
    return file, procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=None,
                        help="OMP_NUM_THREADS of each worker (default: unset, every core)")
    args = parser.parse_args()
    all_params = definitions.stage_params(args.profile)
    quiet = lambda *_: None  # noqa: E731
    with locks.profile_lock(args.profile):
        n = len(replicate_chains.chains(args.profile, all_params))
        start = time.perf_counter()
        replicate_chains.run_chains(args.profile, all_params, True, None, quiet)
        local_s = time.perf_counter() - start
        local = digests(args.profile)
        with tempfile.TemporaryDirectory() as folder:
            file, procs = loopback_cluster(args.workers, Path(folder), args.worker_threads)
            try:
                start = time.perf_counter()
                replicate_chains.run_chains(args.profile, all_params, True, file, quiet)
                dask_s = time.perf_counter() - start
            finally:
                for proc in procs:
                    proc.kill()
        same = digests(args.profile) == local
    print(f"profile {args.profile}: {n} replicate chains, {os.cpu_count()} CPUs")
    print(f"  in this process:              {local_s:7.1f} s")
    threads = args.worker_threads or "all"
    print(f"  {args.workers} Dask workers on loopback ({threads} threads each): {dask_s:7.1f} s")
    print(f"  replicate.json identical: {same}")


if __name__ == "__main__":
    main()
