"""The trainer every backbone shares: a short loop of named steps, checkpoints and history on disk.

AdamW (weight decay on weight matrices only: ``no_weight_decay``), gradient clipping, MSE or
homoscedastic multi-task loss (Kendall, Gal & Cipolla, CVPR 2018) on normalised targets, an
optional extra loss term (the Mamba-3's physics loss). One stopping rule for every backbone:
a linear warm-up over the first epoch, then the peak rate; an epoch is better when it lowers
the best validation MAE by more than ``min_improvement`` of it; after ``lr_patience`` epochs
without a better one the rate is cut by ``lr_factor``, after ``patience`` the run stops
(converged), and ``epochs`` is a ceiling (a run that reaches it has not converged; the history
says which: ``stopped``). After every epoch the history JSON and a resumable state are written
atomically; the best epoch's checkpoint is written whenever validation MAE improves. A killed
run started again resumes from its last completed epoch and ends exactly where an
uninterrupted run would (same machine).

The trainer runs on the device its ``device`` parameter names ("auto": CUDA when available,
else the CPU), a Mamba-3 with the scan its config names ("auto": mamba-ssm's fused kernel on
CUDA, the exact parallel form elsewhere); ``precision`` "bf16" runs forward and loss under
bfloat16 autocast. Checkpoints and resume states hold CPU tensors, so either loads anywhere.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..core import metrics
from ..core.progress import report as report_progress
from ..core.io import atomic_write_text
from ..core.schema import FEATURES, TARGETS
from ..models.base import describe_device, PREDICT_BATCH, resolve_device
from ..physics import propagation
from .compilation import TrainingForward, wants_compile
from .efficiency import training_efficiency
from .checkpoint_io import (checkpoint_dict, load_checkpoint, load_state, mark_completed, on_cpu,
                            save_torch)
from .optimisation import build_optimizer, build_scheduler, no_weight_decay, reduce_on_plateau
from .train_config import MeanLoss, MultiTaskLoss, TrainConfig


def seed_everything(seed: int) -> None:
    """Fix torch's global RNG (model initialisation, dropout) and numpy's legacy one."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _batched(model, x, batch_size=PREDICT_BATCH):
    """``model(x)`` in batches of ``batch_size`` rows (bounded memory on large splits)."""
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _autocast(device: torch.device, precision: str):
    """bfloat16 autocast for "bf16"; no context at all for "fp32" (the paper's numbers)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def scans_used(model, device: torch.device) -> list[str]:
    """The scan forms ``model``'s Mamba-3 blocks run on ``device`` ("auto" resolved), in
    order; empty for a model without Mamba-3 blocks."""
    return [m.scan_on(device) for m in model.modules() if hasattr(m, "scan_on")]


def evaluate(model, frame: pd.DataFrame) -> dict:
    """Per-target metrics of ``model.predict`` in physical units (MAE, RMSE, R²; for received
    power and SINR also the MAE against the noise-free median when the frame has it)."""
    return metrics.target_metrics(frame, model.predict(frame[FEATURES]))


@dataclass
class TrainResult:
    """What ``train`` returns: the best epoch, its validation metrics, the history, the
    checkpoint's path and the epoch a resumed run started after (0: a fresh run)."""
    best_epoch: int
    val_metrics: dict
    history: dict
    checkpoint: Path
    resumed_from_epoch: int

    def summary(self) -> str:
        return (f"{len(self.history['val_mae'])} epochs run, best epoch {self.best_epoch}, "
                f"best validation MAE (normalised) {min(self.history['val_mae']):.4f}")


@dataclass
class _Run:
    """What one run trains with: the model, its loss and optimiser, the splits on the device,
    the batch-order generator, the files it writes and what identifies its configuration."""
    model: torch.nn.Module
    config: TrainConfig
    device: torch.device
    used: dict
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    forward: TrainingForward
    generator: torch.Generator
    fingerprint: dict
    history_path: Path
    state_path: Path
    checkpoint_path: Path


@dataclass
class _Progress:
    """Where a run stands between epochs: its history, best epoch and epochs without a better
    validation MAE, and the first epoch still to train (> 1 after a resume)."""
    history: dict = field(default_factory=lambda: {
        "train_loss": [], "val_loss": [], "val_mae": [],
        "val_mae_per_target": {t: [] for t in TARGETS}, "lr": [], "epoch_time_s": [],
        "train_data_loss": []})
    best: dict = field(default_factory=lambda: {"val_mae": float("inf"), "epoch": 0})
    start_epoch: int = 1
    bad_epochs: int = 0


def train(model, train_frame: pd.DataFrame, val_frame: pd.DataFrame, config: TrainConfig,
          out_dir, run_name: str, checkpoint_name: str, *, data_manifest_sha256: str,
          dataset_stats: dict | None = None, extra_loss: Callable | None = None,
          on_epoch_end: Callable[[int], None] | None = None, progress: bool = True,
          log=print) -> TrainResult:
    """Train ``model`` and write ``<run_name>_training_history.json``, ``checkpoint_name``
    (best epoch) and ``<run_name>_training_state.pth`` (resume) under ``out_dir``.

    ``extra_loss(model, x_batch) -> {name: weighted loss tensor}`` adds terms to the data
    loss; each is recorded in the history under its name. ``on_epoch_end(epoch)`` is called
    once an epoch's history, state and checkpoint are on disk (the resume test kills the
    process there). ``dataset_stats`` (the data set's ``feature_stats.json``) travels in the
    checkpoint; a model whose ``physics_assumptions`` differ from the ones recorded there →
    ValueError.

    The model trains on ``config.device`` (the splits go there whole: a million rows are
    ~70 MB) and comes back on the CPU, in eval mode, with the best epoch's weights, as a
    loaded checkpoint would. The device and the Mamba-3 scan form used are recorded in the
    history and the checkpoint (``device_used``, ``scan_used``). Validation always runs in
    float32, so ``val_mae`` compares across precisions.
    """
    from tqdm.auto import tqdm

    _check_inputs(model, config, dataset_stats)
    run = _set_up(model, train_frame, val_frame, config, Path(out_dir), run_name,
                  checkpoint_name, data_manifest_sha256, log)
    done = _resume(run, run_name, log)
    resumed_from = done.start_epoch - 1
    bar = tqdm(range(done.start_epoch, config.epochs + 1), desc=f"{run_name} epochs",
               initial=done.start_epoch - 1, total=config.epochs, disable=not progress)
    for epoch in bar:
        if done.bad_epochs >= config.patience:
            break
        t0 = time.perf_counter()
        sums, extra_names = _train_epoch(run, extra_loss)
        err, per_target_mae, val_mae = _estimate_val(run)
        _record_epoch(run, done.history, sums, extra_names, err, per_target_mae, val_mae, t0)
        _keep_best(run, done, epoch, val_mae, val_frame, data_manifest_sha256, dataset_stats)
        reduce_on_plateau(run.scheduler, done.bad_epochs, config.lr_patience, config.lr_factor)
        _save_progress(run, done, epoch)
        bar.set_postfix(val_mae=f"{val_mae:.4f}", best=done.best["epoch"])
        seconds = done.history["epoch_time_s"][-1]
        report_progress(f"epoch {epoch}/{config.epochs}: {seconds:.1f} s, validation MAE "
                        f"{val_mae:.5f}{' (best)' if done.best['epoch'] == epoch else ''}, "
                        f"at most {(config.epochs - epoch) * seconds / 60:.1f} min left")
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    bar.close()
    _record_stop(run, done)
    result = _finish(run, done.history, data_manifest_sha256, resumed_from)
    _record_efficiency(run, result.history)
    return result


def _check_inputs(model, config, dataset_stats) -> None:
    """ValueError for a config that is no ``TrainConfig``, or a model whose physics
    assumptions differ from the ones ``dataset_stats`` records for its data set."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    if dataset_stats and "physics" in dataset_stats:
        data_assumptions = propagation.assumptions(dataset_stats["physics"])
        if model.physics_assumptions != data_assumptions:
            raise ValueError(f"the model derives SINR and qos with {model.physics_assumptions}, "
                             f"but the data set was generated with {data_assumptions}: build "
                             f"it with physics_assumptions=dataset.physics_assumptions(stats)")


def _set_up(model, train_frame, val_frame, config, out_dir: Path, run_name: str,
            checkpoint_name: str, data_manifest_sha256: str, log=print) -> _Run:
    """A fresh run: the model and the normalised splits on the device, the loss, the optimiser
    and its schedule, the training step's forward (compiled where it pays: ``compilation``),
    the batch-order generator seeded with ``config.seed``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    used = {"device_used": describe_device(device)}
    scans = sorted(set(scans_used(model, device)))
    if scans:
        used["scan_used"] = "+".join(scans)
    model.to(device)
    x_train, y_train = model.normalizer.features(train_frame), model.normalizer.targets(train_frame)
    x_val, y_val = model.normalizer.features(val_frame), model.normalizer.targets(val_frame)
    x_train, y_train, x_val, y_val = (t.to(device) for t in (x_train, y_train, x_val, y_val))
    criterion = MultiTaskLoss(len(TARGETS)) if config.loss == "multitask" else MeanLoss()
    criterion.to(device)
    optimizer = build_optimizer(model, criterion, config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    scheduler = build_scheduler(optimizer, steps_per_epoch, config.warmup_epochs)
    fingerprint = {"train_config": asdict(config), "model_class": type(model).__name__,
                   "model_config": model.config, "physics_assumptions": model.physics_assumptions,
                   "no_weight_decay": sorted(no_weight_decay(model)),
                   "data_manifest_sha256": data_manifest_sha256,
                   "n_train": len(x_train), "n_val": len(x_val)}
    forward = TrainingForward(model, config.batch_size, wants_compile(
        model, device, config.precision, steps_per_epoch * config.epochs), log)
    return _Run(model, config, device, used, x_train, y_train, x_val, y_val, criterion,
                optimizer, scheduler, steps_per_epoch, forward,
                torch.Generator().manual_seed(config.seed), fingerprint,
                history_path=out_dir / f"{run_name}_training_history.json",
                state_path=out_dir / f"{run_name}_training_state.pth",
                checkpoint_path=out_dir / checkpoint_name)


def _resume(run: _Run, run_name: str, log) -> _Progress:
    """The progress of an interrupted run of the same configuration, its model, loss,
    optimiser, schedule and RNG states restored; a fresh start's when there is none."""
    state = load_state(run.state_path, run.fingerprint, log)
    if state is None:
        return _Progress()
    run.model.load_state_dict(state["model_state_dict"])
    run.criterion.load_state_dict(state["criterion_state_dict"])
    run.optimizer.load_state_dict(state["optimizer_state_dict"])
    run.scheduler.load_state_dict(state["scheduler_state_dict"])
    torch.set_rng_state(state["torch_rng_state"])
    if run.device.type == "cuda" and "cuda_rng_state" in state:
        torch.cuda.set_rng_state(state["cuda_rng_state"], run.device)
    run.generator.set_state(state["generator_state"])
    log(f"resuming {run_name} after epoch {state['epoch']} from {run.state_path}")
    return _Progress(json.loads(state["history_json"]), state["best"], state["epoch"] + 1,
                     state["bad_epochs"])


def _train_epoch(run: _Run, extra_loss) -> tuple[dict, list[str]]:
    """One epoch of optimiser steps over the train split in a fresh random order; the sums of
    the batches' losses (total, data, each extra term) and the extra terms' names."""
    model, config = run.model, run.config
    model.train()
    order = torch.randperm(len(run.x_train), generator=run.generator).to(run.device)
    sums, extras = {"loss": 0.0, "data": 0.0}, {}
    for i in range(run.steps_per_epoch):
        idx = order[i * config.batch_size:(i + 1) * config.batch_size]
        xb, yb = run.x_train[idx], run.y_train[idx]
        with _autocast(run.device, config.precision):
            per_target = ((run.forward(xb).float() - yb) ** 2).mean(dim=0)
            data_loss = run.criterion(per_target)
            extras = extra_loss(model, xb) if extra_loss is not None else {}
            loss = data_loss + sum(extras.values())
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        sums["loss"] += loss.item()
        sums["data"] += per_target.mean().item()
        for name, value in extras.items():
            sums[name] = sums.get(name, 0.0) + value.item()
    return sums, list(extras)


def _estimate_val(run: _Run):
    """The validation split's normalised errors (float32, in eval mode), per-target MAE and
    mean MAE."""
    run.model.eval()
    with torch.inference_mode():
        err = _batched(run.model, run.x_val) - run.y_val
    per_target_mae = err.abs().mean(dim=0)
    return err, per_target_mae, float(per_target_mae.mean())


def _record_epoch(run: _Run, history: dict, sums: dict, extra_names, err, per_target_mae,
                  val_mae: float, t0: float) -> None:
    """Append an epoch's mean train losses, validation loss and MAE, learning rate and time
    to ``history``."""
    steps = run.steps_per_epoch
    history["train_loss"].append(sums["loss"] / steps)
    history["train_data_loss"].append(sums["data"] / steps)
    for name in extra_names:
        history.setdefault(f"train_{name}", []).append(sums[name] / steps)
    history["val_loss"].append(float((err ** 2).mean()))
    history["val_mae"].append(val_mae)
    for t, v in zip(TARGETS, per_target_mae.tolist()):
        history["val_mae_per_target"][t].append(v)
    history["lr"].append(run.optimizer.param_groups[0]["lr"])
    history["epoch_time_s"].append(time.perf_counter() - t0)
    history.update(run.used, **run.forward.used)


def _keep_best(run: _Run, done: _Progress, epoch: int, val_mae: float, val_frame,
               data_manifest_sha256: str, dataset_stats) -> None:
    """Early-stopping bookkeeping: a better validation MAE (below the best by more than
    ``min_improvement`` of it) makes ``epoch`` the best and writes its checkpoint; any other
    counts towards the patience."""
    if val_mae < done.best["val_mae"] * (1.0 - run.config.min_improvement):
        done.best, done.bad_epochs = {"val_mae": val_mae, "epoch": epoch}, 0
        val_metrics = evaluate(run.model, val_frame)
        save_torch(run.checkpoint_path, {**checkpoint_dict(
            run.model, epoch, val_metrics, run.config, data_manifest_sha256, dataset_stats),
            **run.used, **run.forward.used})
    else:
        done.bad_epochs += 1
    done.history["best_epoch"] = done.best["epoch"]


def _record_stop(run: _Run, done: _Progress) -> None:
    """Say in the history why the run ended: "patience" (no better epoch for ``patience``
    epochs: converged) or "ceiling" (``epochs`` reached first: not converged)."""
    stopped = "patience" if done.bad_epochs >= run.config.patience else "ceiling"
    done.history.update(stopped=stopped, epochs_without_better=done.bad_epochs)
    atomic_write_text(run.history_path, json.dumps(done.history, indent=1))


def _save_progress(run: _Run, done: _Progress, epoch: int) -> None:
    """Write the resumable state after ``epoch`` (weights, optimiser, schedule, RNGs, history),
    then the history JSON."""
    resume = {
        "fingerprint": run.fingerprint, "epoch": epoch, "bad_epochs": done.bad_epochs,
        "best": done.best, "history_json": json.dumps(done.history),
        "model_state_dict": on_cpu(run.model.state_dict()),
        "criterion_state_dict": on_cpu(run.criterion.state_dict()),
        "optimizer_state_dict": on_cpu(run.optimizer.state_dict()),
        "scheduler_state_dict": run.scheduler.state_dict(),
        "torch_rng_state": torch.get_rng_state(), "generator_state": run.generator.get_state(),
        "completed": False}
    if run.device.type == "cuda":
        resume["cuda_rng_state"] = torch.cuda.get_rng_state(run.device)
    save_torch(run.state_path, resume)
    atomic_write_text(run.history_path, json.dumps(done.history, indent=1))


def _record_efficiency(run: _Run, history: dict) -> None:
    """Add the run's achieved GFLOP/s against the GEMM peak (``efficiency``) to its history
    JSON and report it; measured after training, so it changes nothing the run computed."""
    if not history["epoch_time_s"]:
        return
    history["efficiency"] = training_efficiency(
        run.model, run.x_train, len(run.x_val), run.config.batch_size,
        history["epoch_time_s"], measure_peak=run.device.type == "cpu")
    atomic_write_text(run.history_path, json.dumps(history, indent=1))
    found = history["efficiency"]
    peak = (f" of a {found['gemm_peak_gflops']:.1f} GFLOP/s fp32 GEMM peak "
            f"({100 * found['fraction_of_peak']:.0f} %)" if "gemm_peak_gflops" in found else "")
    report_progress(f"{found['achieved_gflops']:.1f} GFLOP/s in matrix products at "
                    f"{found['threads']} thread(s){peak}")


def _finish(run: _Run, history: dict, data_manifest_sha256: str,
            resumed_from: int) -> TrainResult:
    """Mark the run completed and bring the model back on the CPU, in eval mode, with the best
    epoch's weights read from its checkpoint."""
    mark_completed(run.state_path)
    checkpoint = load_checkpoint(run.checkpoint_path, data_manifest_sha256=data_manifest_sha256)
    run.model.to("cpu")
    run.model.load_state_dict(checkpoint["model_state_dict"])
    run.model.eval()
    return TrainResult(best_epoch=checkpoint["epoch"], val_metrics=checkpoint["val_metrics"],
                       history=history, checkpoint=run.checkpoint_path,
                       resumed_from_epoch=resumed_from)
