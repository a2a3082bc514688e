"""One short check for a lent GPU machine: the paper profile's backbones trained on CUDA against
the CPU run's numbers, then the CUDA tests. Minutes of GPU time, not hours.

From the repository root, with the project's environment (``make env`` builds .venv; the fused
Mamba-3 kernel needs ``pip install mamba-ssm==2.3.2.post1``, and the check goes on without it):

    .venv/bin/python benchmarks/gpu_check.py --out "$OUT"           # paper profile, fp32
    .venv/bin/python benchmarks/gpu_check.py --out "$OUT" --bf16    # each backbone in bf16 too
    .venv/bin/python benchmarks/gpu_check.py --rows 3000 --epochs 1 --skip-tests   # smoke run
    .venv/bin/python benchmarks/gpu_check.py --rows 20000 --steps-only --tests "fused or upstream"

1. The device, torch, and whether mamba_ssm's fused kernel can run (else why not).
2. Seconds per training step at batch 512 for each backbone, and the Mamba-3 in both scan forms
   (``--steps-only`` stops here).
3. The profile's data set, built from its 01_data parameters (``--rows`` replaces n_samples) in a
   temporary folder: data/<profile> is never touched.
4. Each registered backbone trained as its stage trains it (``training.train_backbone`` with the
   profile's parameters, ``device`` auto; ``--epochs`` caps the epochs), timed, then scored on
   the test split: received power MAE against the noise-free median, radius MAE.
5. ``pytest tests/test_device.py tests/test_mamba3.py`` (the CUDA tests run here; ``--tests``
   is a ``-k`` expression), last, streamed to ``tests.log``.
6. ``gpu_check.json`` and ``gpu_check.md`` under ``--out``, rewritten after every run (a run cut
   off by its time limit still reports what it finished), beside the CPU run's training time
   and test errors from ``--reference`` (data/<profile>/results/metrics.json) when present.

Budget, measured on an H200 (2026-11-27, torch 2.11, mamba-ssm 2.3.2.post1): the 1e6-row data
set builds in 25 s; one training step of the paper Mamba-3 at batch 512 takes 46 ms in the
parallel form and 53 ms with the fused kernel (the model is launch-bound: about 8,600 ATen calls
per forward and backward), so an epoch of 525k rows is about 50 s. The whole CUDA test set did
not finish in 130 s on 8 pytest-xdist workers, nor its CUDA/fused subset in 190 s on one: give
the tests their own call of several minutes, or select them with ``--tests``. Where GPU time is
a few minutes, start with ``--epochs 2`` and size the full run from that.

mamba-ssm on a machine without network: its package ``__init__`` imports the compiled
selective-scan extension and transformers, which the Mamba-3 module needs neither of. Copy the
sdist's ``mamba_ssm`` folder onto ``PYTHONPATH`` with an ``__init__.py`` that only sets
``__version__``: its Mamba-3 kernels are Triton, compiled on first use.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from coverage_lib.datasets import dataset
from coverage_lib.core import metrics
from coverage_lib.pipeline import profiles
from coverage_lib.models import registry
from coverage_lib.training import backbone_stage, trainer
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.mamba3 import _fused_unavailable_reason

ERRORS = (("received_power_dbm", "mae_vs_median"), ("coverage_radius_m", "mae"))


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--rows", type=int, help="n_samples instead of the profile's")
    parser.add_argument("--epochs", type=int, help="cap every backbone's epochs at this")
    parser.add_argument("--backbones", default=",".join(registry.BACKBONES))
    parser.add_argument("--bf16", action="store_true", help="also train each one in bf16")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--tests", default="", help="pytest -k expression for the tests run")
    parser.add_argument("--steps-only", action="store_true",
                        help="time training steps, train no backbone")
    parser.add_argument("--reference", help="the CPU run's metrics.json "
                                            "(default: data/<profile>/results/metrics.json)")
    parser.add_argument("--out", default="data/gpu_check")
    return parser.parse_args()


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "cpu_threads": torch.get_num_threads(),
            "device_auto": str(trainer.resolve_device("auto")),
            "fused_mamba3": _fused_unavailable_reason() or "available"}


def run_tests(out: Path, select: str = "") -> dict:
    """The CUDA tests, their output streamed to ``out/tests.log`` line by line, so a run cut off
    by the machine's time limit still shows which tests passed (the first fused call compiles
    and autotunes mamba-ssm's Triton kernels: minutes, not seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(out / "tests.log", "w") as log:
        done = subprocess.run([sys.executable, "-u", "-m", "pytest", "tests/test_device.py",
                               "tests/test_mamba3.py", "-v", "-rs", "--durations=15",
                               *(["-k", select] if select else [])],
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    tail = (out / "tests.log").read_text().strip().splitlines()[-40:]
    print("\n".join(tail))
    return {"returncode": done.returncode, "wall_s": time.perf_counter() - t0, "tail": tail}


def build_data(profile: str, rows: int | None, data_dir: Path) -> dict:
    p = profiles.load_profile(profile)["01_data"]
    id_ranges = {c: tuple(p[f"id_{c}"]) for c in ("frequency_ghz", "rain_rate_mmh",
                                                    "distance_m")}
    t0 = time.perf_counter()
    n_rows = rows or p["n_samples"]
    dataset.build_files(data_dir / "dataset", n_rows, p["seed"], p["split_fractions"],
                        id_ranges, p["edge_sinr_db"], p["implementation_gap_db"],
                        p["chunk_rows"])
    return {"rows": n_rows, "wall_s": time.perf_counter() - t0}


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_one(key: str, stage: dict, data_dir: Path, frames) -> dict:
    """Train backbone ``key`` as its stage does (its notebook's two cells), then score it."""
    train, val, test, assumptions = frames
    model = backbone_stage.build_model(key, stage, train, assumptions)
    t0 = time.perf_counter()
    result = backbone_stage.train_backbone(key, model, train, val, data_dir, stage, progress=False)
    wall = time.perf_counter() - t0
    scores = metrics.target_metrics(test, model.predict(test[FEATURES], device=stage["device"]))
    history = result.history
    return {"backbone": key, "precision": stage["precision"], "wall_s": wall,
            "epochs": len(history["val_mae"]), "best_epoch": result.best_epoch,
            "best_val_mae": min(history["val_mae"]),
            "epoch_time_s": sum(history["epoch_time_s"]) / len(history["epoch_time_s"]),
            "device_used": history["device_used"], "scan_used": history.get("scan_used"),
            "test": {f"{t} {s}": scores[t][s] for t, s in ERRORS}}


def step_times(profile: dict, train, assumptions, batch: int = 512, steps: int = 30) -> dict:
    """Seconds per training step (forward, backward, AdamW) on one batch of ``batch`` rows, for
    each backbone as the profile configures it, and for the Mamba-3 in each scan form that runs
    here (the fused kernel against our parallel form)."""
    device = trainer.resolve_device("auto")
    forms = [(key, None) for key in registry.BACKBONES if key != "mamba3"]
    forms += [("mamba3", scan) for scan in ("parallel", "fused")
              if scan == "parallel" or device.type == "cuda"]
    out = {}
    for key, scan in forms:
        name = key + (f" {scan}" if scan else "")
        stage = {**profile[registry.get(key).stage], **({"scan": scan} if scan else {})}
        try:  # the fused form raises here on a CUDA machine without mamba_ssm: reported
            model = backbone_stage.build_model(key, stage, train, assumptions).to(device)
            x = model.normalizer.feature_array(train[FEATURES].to_numpy()[:batch]).to(device)
            y = torch.randn(len(x), len(TARGETS), device=device)
            optimiser = torch.optim.AdamW(model.parameters())
            for i in range(steps + 5):
                if i == 5:
                    _synchronise(device)
                    t0 = time.perf_counter()
                optimiser.zero_grad()
                ((model(x).float() - y) ** 2).mean().backward()
                optimiser.step()
            _synchronise(device)
            out[name] = (time.perf_counter() - t0) / steps
        except Exception as err:  # noqa: BLE001 - reported, not hidden
            out[name] = f"{type(err).__name__}: {err}"
        print(f"training step, {name}: {out[name]}")
    return out


def cpu_reference(path: Path, key: str) -> dict:
    if not path.is_file():
        return {}
    ref = json.loads(path.read_text())
    out = {"cpu_wall_s": ref["training"][key]["training_time_s"],
           "cpu_epochs": ref["training"][key]["epochs"]}
    out.update({f"cpu {t} {s}": ref["accuracy"]["test"][key][t][s] for t, s in ERRORS})
    return out


def write_summary(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# GPU check ({summary['profile']} profile, {summary['data'].get('rows')} rows)",
             "", f"Machine: {summary['machine']}", "",
             f"Tests: {summary['tests'].get('tail', ['skipped'])[-1:]}", "",
             f"Training step, batch 512, s: {summary.get('step_s', {})}", "",
             "| backbone | precision | device | scan | epochs | wall s | s/epoch | CPU wall s "
             "| best val MAE | power MAE vs median dB (CPU) | radius MAE m (CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        power, radius = (f"{r['test'][f'{t} {s}']:.4g} ({r.get(f'cpu {t} {s}', float('nan')):.4g})"
                         for t, s in ERRORS)
        lines.append(f"| {r['backbone']} | {r['precision']} | {r['device_used']} | "
                     f"{r['scan_used'] or '-'} | {r['epochs']} | {r['wall_s']:.0f} | "
                     f"{r['epoch_time_s']:.1f} | {r.get('cpu_wall_s', float('nan')):.0f} | "
                     f"{r['best_val_mae']:.4f} | {power} | {radius} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def measure(args, out: Path, summary: dict) -> None:
    """Steps 2 to 4: the data set, training-step times, then each backbone trained and
    scored."""
    reference = Path(args.reference or f"data/{args.profile}/results/metrics.json")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        data_dir = Path(tmp)
        summary["data"] = build_data(args.profile, args.rows, data_dir)
        print(f"data set: {summary['data']}")
        train, val, assumptions = backbone_stage.training_data(data_dir)
        frames = (train, val, dataset.load_split(data_dir / "dataset", "test"), assumptions)
        profile = profiles.load_profile(args.profile)
        summary["step_s"] = step_times(profile, train, assumptions)
        write_summary(out, summary)
        if args.steps_only:
            return
        for precision in ("fp32", "bf16") if args.bf16 else ("fp32",):
            for key in args.backbones.split(","):
                stage = {**profile[registry.get(key).stage], "device": "auto",
                         "precision": precision}
                if args.epochs:
                    stage["epochs"] = min(stage["epochs"], args.epochs)
                run = train_one(key, stage, data_dir, frames)  # bf16 overwrites fp32's files
                run.update(cpu_reference(reference, key))
                summary["runs"].append(run)
                print(json.dumps(run))
                write_summary(out, summary)


def main():
    args = arguments()
    out = Path(args.out)
    summary = {"profile": args.profile, "machine": machine(), "tests": {}, "data": {},
               "runs": []}
    print(json.dumps(summary["machine"], indent=1))
    write_summary(out, summary)
    measure(args, out, summary)
    if not args.skip_tests:   # last: their first fused call compiles the Triton kernels
        summary["tests"] = run_tests(out, args.tests)
        write_summary(out, summary)
    print((out / "gpu_check.md").read_text())


if __name__ == "__main__":
    main()
