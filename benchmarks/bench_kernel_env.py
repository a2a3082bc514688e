"""A training epoch in a notebook kernel started by the pipeline, in this process and on a local
Dask cluster (benchmark, not a test): wall time, user and system CPU, minor page faults.

Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``); a kernel started from a worker inherits it unless the
pipeline's kernel manager removes it (``pipeline.execution.kernel_environment``). With any
``MALLOC_*`` threshold set, glibc stops adapting its mmap threshold, so every buffer over 128 KiB
is mapped and unmapped at every step. Each row below is one kernel training the paper's MLP
(13 → 256×8 → 5, batch 512, fp32) for one epoch on ``--rows`` generated rows at one thread:

- ``in-process``: the kernel started from this process (how the main run's stages start);
- ``dask worker``: the kernel started from a local Dask cluster's worker (how replicate chains
  start), with the pipeline's kernel manager;
- ``dask worker, inherited env``: the same with a kernel manager that passes the worker's
  environment on as it is (what the pipeline did before), to show what the fix removes.

Run on an otherwise idle machine: ``.venv/bin/python benchmarks/bench_kernel_env.py``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import nbformat

PROBE = """
import json, os, resource, time
import torch
from coverage_lib.datasets import dataset
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer
from coverage_lib.training import trainer
from coverage_lib.training.train_config import TrainConfig

torch.set_num_threads(1)
frame = dataset.generate({rows}, seed=0)
train, val = frame.iloc[: int(0.85 * len(frame))], frame.iloc[int(0.85 * len(frame)):]
trainer.seed_everything(0)
model = CoverageMLP(Normalizer.fit(train).to_dict(), MLPConfig(width=256, depth=8))
config = TrainConfig(epochs=1, batch_size=512, lr=2e-3, patience=10, seed=0, device="cpu")
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
trainer.train(model, train, val, config, {out!r}, "probe", "probe.pth",
              data_manifest_sha256="probe", progress=False)
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"wall_s": wall, "user_s": after.ru_utime - before.ru_utime,
                  "sys_s": after.ru_stime - before.ru_stime,
                  "minor_faults": after.ru_minflt - before.ru_minflt,
                  "malloc_env": sorted(k for k in os.environ if k.startswith("MALLOC_"))}}))
"""


def epoch_in_kernel(rows: int, inherit: bool) -> dict:
    """Execute the probe notebook with the pipeline's kernel manager (``inherit``: one that
    keeps the parent's environment) and return what it printed."""
    import papermill as pm

    from coverage_lib.pipeline import execution

    with tempfile.TemporaryDirectory() as tmp:
        source, done = Path(tmp) / "probe.ipynb", Path(tmp) / "done.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(PROBE.format(rows=rows, out=tmp))]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, source)
        manager = execution.kernel_manager_class(clean_environment=not inherit)
        pm.execute_notebook(str(source), str(done), kernel_name="python3", progress_bar=False,
                            kernel_manager_class=manager, cwd=tmp)
        out = nbformat.read(done, 4).cells[0].outputs
        return json.loads("".join(o.get("text", "") for o in out if o.get("name") == "stdout"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from coverage_lib.core.machine import machine, machine_line

    print(machine_line(machine()))
    rows = [("in-process", epoch_in_kernel(args.rows, inherit=False))]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        for label, inherit in (("dask worker", False), ("dask worker, inherited env", True)):
            rows.append((label, client.submit(epoch_in_kernel, args.rows, inherit,
                                              pure=False).result()))
    print(f"{'where':<28}{'wall s':>8}{'user s':>8}{'sys s':>8}{'sys %':>7}{'minor faults':>14}"
          "  MALLOC_* in the kernel")
    for label, r in rows:
        cpu = r["user_s"] + r["sys_s"]
        print(f"{label:<28}{r['wall_s']:>8.2f}{r['user_s']:>8.2f}{r['sys_s']:>8.2f}"
              f"{100 * r['sys_s'] / cpu:>7.1f}{r['minor_faults']:>14,}  "
              f"{', '.join(r['malloc_env']) or '-'}")


if __name__ == "__main__":
    main()
