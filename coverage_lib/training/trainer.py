"""The trainer both backbones share: one straight loop, checkpoints and history in plain sight.

AdamW (weight decay on weight matrices only: ``no_weight_decay``) with linear warm-up and
cosine decay, gradient clipping, MSE or homoscedastic
multi-task loss (Kendall, Gal & Cipolla, CVPR 2018) on normalised targets, an optional extra
loss term (the Mamba-3's physics loss), early stopping on validation MAE. After every epoch
the history JSON and a resumable state are written atomically; the best epoch's checkpoint
is written whenever validation MAE improves. A killed run started again resumes from its last
completed epoch and ends exactly where an uninterrupted run would (same machine).

The trainer runs on the device its ``device`` parameter names ("auto": CUDA when available,
else the CPU), a Mamba-3 with the scan its config names ("auto": mamba-ssm's fused kernel on
CUDA, the exact parallel form elsewhere); ``precision`` "bf16" runs forward and loss under
bfloat16 autocast. Checkpoints and resume states hold CPU tensors, so either loads anywhere.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..datasets import dataset
from ..core import metrics, paths, schema, validation
from ..physics import propagation
from ..models import registry
from ..core.schema import FEATURES, TARGETS
from ..core.io import atomic_write_bytes, atomic_write_text
from ..models.base import describe_device, PRECISIONS, PREDICT_BATCH, resolve_device

CHECKPOINT_FORMAT = "d2tl-coverage-checkpoint/1"
LOSSES = ("mse", "multitask")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 10
    loss: str = "mse"
    seed: int = 0
    grad_clip: float = 1.0
    warmup_fraction: float = 0.03
    # "auto" (CUDA when available, else the CPU), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    # "fp32", or "bf16": forward and loss under bfloat16 autocast, float32 master weights and
    # optimiser (no loss scaling: bf16 has float32's range). On CUDA fast; on a CPU without
    # native bf16 (this project's 2-core machines) it works but is slower than fp32.
    precision: str = "fp32"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            validation.positive_int(name, getattr(self, name))
        for name in ("lr", "grad_clip"):
            validation.positive_number(name, getattr(self, name))
        validation.non_negative_number("weight_decay", self.weight_decay)
        validation.one_of(*LOSSES)("loss", self.loss)
        validation.non_negative_int("seed", self.seed)
        validation.unit_interval("warmup_fraction", self.warmup_fraction)
        validation.torch_device("device", self.device)
        validation.one_of(*PRECISIONS)("precision", self.precision)


class MultiTaskLoss(nn.Module):
    """Σ_i ½·exp(−s_i)·MSE_i + ½·s_i with learned s_i = log σ_i² per target (Kendall 2018)."""

    def __init__(self, n_targets: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_targets))

    def forward(self, per_target_mse):
        return (0.5 * torch.exp(-self.log_vars) * per_target_mse + 0.5 * self.log_vars).sum()


class MeanLoss(nn.Module):
    def forward(self, per_target_mse):
        return per_target_mse.mean()


def seed_everything(seed: int) -> None:
    """Fix torch's global RNG (model initialisation, dropout) and numpy's legacy one."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _warmup_cosine(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def no_weight_decay(model) -> set[str]:
    """Names of the parameters AdamW does not decay: every one of fewer than two dimensions
    (linear biases, norm scales) and every one a module flags ``_no_weight_decay`` (the
    mamba-ssm convention: the Mamba-3's Δ and B/C biases, D, the token-embedding biases).
    Weight decay thus acts on weight matrices only."""
    return {n for n, p in model.named_parameters()
            if p.ndim < 2 or getattr(p, "_no_weight_decay", False)}


def _batched(model, x, batch_size=PREDICT_BATCH):
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _autocast(device: torch.device, precision: str):
    """bfloat16 autocast for "bf16"; no context at all for "fp32" (the paper's numbers)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _on_cpu(obj):
    """``obj`` (a state dict, nested dicts and lists) with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


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
    best_epoch: int
    val_metrics: dict
    history: dict
    checkpoint: Path
    resumed_from_epoch: int

    def summary(self) -> str:
        return (f"{len(self.history['val_mae'])} epochs run, best epoch {self.best_epoch}, "
                f"best validation MAE (normalised) {min(self.history['val_mae']):.4f}")


def _save_torch(path: Path, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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

    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    if dataset_stats and "physics" in dataset_stats:
        data_assumptions = propagation.assumptions(dataset_stats["physics"])
        if model.physics_assumptions != data_assumptions:
            raise ValueError(f"the model derives SINR and qos with {model.physics_assumptions}, "
                             f"but the data set was generated with {data_assumptions}: build "
                             f"it with physics_assumptions=dataset.physics_assumptions(stats)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history_path = out_dir / f"{run_name}_training_history.json"
    state_path = out_dir / f"{run_name}_training_state.pth"
    checkpoint_path = out_dir / checkpoint_name

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
    undecayed = no_weight_decay(model)
    decay = [p for n, p in model.named_parameters() if n not in undecayed]
    no_decay = [p for n, p in model.named_parameters() if n in undecayed]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay + list(criterion.parameters()), "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(total, max(1, int(config.warmup_fraction * total))))
    generator = torch.Generator().manual_seed(config.seed)
    fingerprint = {"train_config": asdict(config), "model_class": type(model).__name__,
                   "model_config": model.config, "physics_assumptions": model.physics_assumptions,
                   "no_weight_decay": sorted(undecayed),
                   "data_manifest_sha256": data_manifest_sha256,
                   "n_train": len(x_train), "n_val": len(x_val)}

    history = {"train_loss": [], "val_loss": [], "val_mae": [], "val_mae_per_target": {
        t: [] for t in TARGETS}, "lr": [], "epoch_time_s": [], "train_data_loss": []}
    best = {"val_mae": float("inf"), "epoch": 0}
    start_epoch, bad_epochs = 1, 0
    state = _load_state(state_path, fingerprint, log)
    if state is not None:
        model.load_state_dict(state["model_state_dict"])
        criterion.load_state_dict(state["criterion_state_dict"])
        optimizer.load_state_dict(state["optimizer_state_dict"])
        scheduler.load_state_dict(state["scheduler_state_dict"])
        torch.set_rng_state(state["torch_rng_state"])
        if device.type == "cuda" and "cuda_rng_state" in state:
            torch.cuda.set_rng_state(state["cuda_rng_state"], device)
        generator.set_state(state["generator_state"])
        history, best = json.loads(state["history_json"]), state["best"]
        start_epoch, bad_epochs = state["epoch"] + 1, state["bad_epochs"]
        log(f"resuming {run_name} after epoch {state['epoch']} from {state_path}")
    resumed_from = start_epoch - 1

    bar = tqdm(range(start_epoch, config.epochs + 1), desc=f"{run_name} epochs",
               initial=start_epoch - 1, total=config.epochs, disable=not progress)
    for epoch in bar:
        if bad_epochs >= config.patience:
            break
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)
        sums = {"loss": 0.0, "data": 0.0}
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            with _autocast(device, config.precision):
                per_target = ((model(xb).float() - yb) ** 2).mean(dim=0)
                data_loss = criterion(per_target)
                extras = extra_loss(model, xb) if extra_loss is not None else {}
                loss = data_loss + sum(extras.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            sums["loss"] += loss.item()
            sums["data"] += per_target.mean().item()
            for name, value in extras.items():
                sums[name] = sums.get(name, 0.0) + value.item()

        model.eval()
        with torch.inference_mode():
            err = _batched(model, x_val) - y_val
        per_target_mae = err.abs().mean(dim=0)
        val_mae = float(per_target_mae.mean())
        history["train_loss"].append(sums["loss"] / steps_per_epoch)
        history["train_data_loss"].append(sums["data"] / steps_per_epoch)
        for name in extras:
            history.setdefault(f"train_{name}", []).append(sums[name] / steps_per_epoch)
        history["val_loss"].append(float((err ** 2).mean()))
        history["val_mae"].append(val_mae)
        for t, v in zip(TARGETS, per_target_mae.tolist()):
            history["val_mae_per_target"][t].append(v)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        history["epoch_time_s"].append(time.perf_counter() - t0)
        history.update(used)

        if val_mae < best["val_mae"]:
            best, bad_epochs = {"val_mae": val_mae, "epoch": epoch}, 0
            val_metrics = evaluate(model, val_frame)
            _save_torch(checkpoint_path, {**_checkpoint(
                model, epoch, val_metrics, config, data_manifest_sha256, dataset_stats), **used})
        else:
            bad_epochs += 1
        history["best_epoch"] = best["epoch"]
        resume = {
            "fingerprint": fingerprint, "epoch": epoch, "bad_epochs": bad_epochs,
            "best": best, "history_json": json.dumps(history),
            "model_state_dict": _on_cpu(model.state_dict()),
            "criterion_state_dict": _on_cpu(criterion.state_dict()),
            "optimizer_state_dict": _on_cpu(optimizer.state_dict()),
            "scheduler_state_dict": scheduler.state_dict(),
            "torch_rng_state": torch.get_rng_state(), "generator_state": generator.get_state(),
            "completed": False}
        if device.type == "cuda":
            resume["cuda_rng_state"] = torch.cuda.get_rng_state(device)
        _save_torch(state_path, resume)
        atomic_write_text(history_path, json.dumps(history, indent=1))
        bar.set_postfix(val_mae=f"{val_mae:.4f}", best=best["epoch"])
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    bar.close()

    _mark_completed(state_path)
    checkpoint = load_checkpoint(checkpoint_path, data_manifest_sha256=data_manifest_sha256)
    model.to("cpu")
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()
    return TrainResult(best_epoch=checkpoint["epoch"], val_metrics=checkpoint["val_metrics"],
                       history=history, checkpoint=checkpoint_path,
                       resumed_from_epoch=resumed_from)


def _load_state(path: Path, fingerprint: dict, log):
    """The resumable state of an interrupted run with the same configuration, else None."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: start afresh, say why
        log(f"ignoring unreadable training state {path}: {err}")
        return None
    if state.get("completed"):
        return None  # a finished run: a new run trains from scratch
    if state.get("fingerprint") != fingerprint:
        log(f"training state {path} is from another configuration or data set; "
            f"starting from scratch")
        return None
    return state


def _mark_completed(path: Path) -> None:
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["completed"] = True
        _save_torch(path, state)


def _checkpoint(model, epoch, val_metrics, config, manifest_sha256, dataset_stats) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "model_config": model.config,
        "model_state_dict": _on_cpu(model.state_dict()),
        "feature_stats": model.normalizer.to_dict(),
        "physics_assumptions": model.physics_assumptions,
        "dataset_stats": dataset_stats or {},
        "features": list(FEATURES),
        "targets": list(TARGETS),
        "epoch": epoch,
        "r2": {t: val_metrics[t]["r2"] for t in TARGETS},
        "val_metrics": val_metrics,
        "train_config": asdict(config),
        "data_manifest_sha256": manifest_sha256,
        "library_version": __version__,
        "torch_version": str(torch.__version__),
    }


REQUIRED_KEYS = ("format", "model_class", "model_config", "model_state_dict", "feature_stats",
                 "features", "targets", "epoch", "r2", "val_metrics", "data_manifest_sha256")


def load_checkpoint(path, data_manifest_sha256: str | None = None,
                    model_overrides: dict | None = None) -> dict:
    """Read and validate a checkpoint without running any code from it.

    ``torch.load(weights_only=True)`` refuses pickled objects other than tensors and plain
    data. The result has its model rebuilt under ``"model"``. A checkpoint for other features,
    an unknown model class or config, or (when ``data_manifest_sha256`` is given) another data
    set → ValueError saying what differs. ``model_overrides`` replaces config fields that do
    not change the weights (e.g. ``{"scan": "recurrent"}``). A Mamba-3 whose config says scan
    "fused" (trained on a GPU) is rebuilt with scan "auto": the same weights, run by the fused
    kernel on CUDA with mamba_ssm and by the exact parallel form elsewhere, so it loads and
    predicts on a machine without the kernel (the model comes back on the CPU).
    The model serves with the physics assumptions it was trained with (``physics_assumptions``,
    else its data set's; a checkpoint that records neither: the library defaults).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not a loadable checkpoint (refused without running it): "
                         f"{str(err).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a D2TL Coverage checkpoint (format "
                         f"{CHECKPOINT_FORMAT!r} expected)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}")
    if ckpt["features"] != FEATURES or ckpt["targets"] != TARGETS:
        raise ValueError(f"checkpoint {path} was trained on features {ckpt['features']} → "
                         f"{ckpt['targets']}; this library uses {FEATURES} → {TARGETS}")
    if data_manifest_sha256 is not None and ckpt["data_manifest_sha256"] != data_manifest_sha256:
        raise ValueError(f"checkpoint {path} was trained on data set MANIFEST sha256 "
                         f"{ckpt['data_manifest_sha256']}, not on the one given "
                         f"({data_manifest_sha256})")
    try:  # only the registered backbones' classes can be rebuilt from a checkpoint
        model_cls, config_cls = registry.by_class_name(ckpt["model_class"]).classes()
    except ValueError as err:
        raise ValueError(f"checkpoint {path} holds model class {ckpt['model_class']!r}: "
                         f"{err}") from None
    assumptions = ckpt.get("physics_assumptions")
    recorded = (ckpt.get("dataset_stats") or {}).get("physics")
    if assumptions is not None and recorded is not None \
            and propagation.assumptions(assumptions) != propagation.assumptions(recorded):
        raise ValueError(f"checkpoint {path}: its model serves with physics assumptions "
                         f"{assumptions}, its data set was generated with {recorded}")
    try:
        fields = dict(ckpt["model_config"])
        if fields.get("scan") == "fused":
            fields["scan"] = "auto"
        config = config_cls(**{**fields, **(model_overrides or {})})
        model = model_cls(ckpt["feature_stats"], config,
                          physics_assumptions=recorded if assumptions is None else assumptions)
        model.load_state_dict(ckpt["model_state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        raise ValueError(f"checkpoint {path}: its model config {ckpt['model_config']} does "
                         f"not build a {ckpt['model_class']} matching its weights: "
                         f"{str(err).splitlines()[0]}") from None
    model.eval()
    ckpt["model"] = model
    return ckpt


def train_backbone(key: str, model, train_frame: pd.DataFrame, val_frame: pd.DataFrame,
                   data_dir, stage_params: dict, *, extra_loss: Callable | None = None,
                   progress: bool = True, log=print) -> TrainResult:
    """Train the registered backbone ``key`` (``registry``) as its training stage does: the
    trainer settings from ``stage_params`` (the notebook's validated parameters; the names of
    ``TRAINER_RULES``), the checkpoint and history under the names the registry gives,
    in ``<data_dir>/models``, pinned to the data set's MANIFEST and statistics."""
    backbone = registry.get(key)
    data = paths.dataset_dir(data_dir)
    config = TrainConfig(**{name: stage_params[name] for name in TRAINER_RULES})
    return train(model, train_frame, val_frame, config, paths.models_dir(data_dir),
                 backbone.run_name, backbone.checkpoint,
                 data_manifest_sha256=dataset.manifest_sha256(data),
                 dataset_stats=dataset.load_stats(data), extra_loss=extra_loss,
                 progress=progress, log=log)


def training_data(data_dir, log=print) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What a training stage reads: the train split's features and targets and the whole
    validation split (its noise-free medians score the epochs) of ``data_dir``'s data set
    (checked against its MANIFEST), and the physics assumptions the data were made with."""
    data = paths.dataset_dir(data_dir)
    train = dataset.load_split(data, "train", schema.MODEL_COLUMNS)
    val = dataset.load_split(data, "val")
    log(f"train {len(train)} rows, validation {len(val)} rows; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads")
    return train, val, dataset.physics_assumptions(dataset.load_stats(data))


# The shared trainer's parameters (coverage_lib.training.TrainConfig), in both training stages.
TRAINER_RULES = {
    "epochs": validation.positive_int,
    "batch_size": validation.positive_int,
    "lr": validation.positive_number,
    "weight_decay": validation.non_negative_number,
    "patience": validation.positive_int,
    "loss": validation.one_of("mse", "multitask"),
    "seed": validation.non_negative_int,
    "device": validation.torch_device,
    "precision": validation.one_of("fp32", "bf16"),
}


def stage_rules(backbone) -> dict:
    """The rules of a backbone's training stage: the trainer's (``TRAINER_RULES``) and the
    backbone's own (``registry.Backbone.stage_rules``)."""
    return {**TRAINER_RULES, **backbone.stage_rules}


def shared_params(namespace: dict) -> dict:
    """The shared training notebook's parameters from its namespace, checked: ``model`` a
    registered key, ``config`` fields of that backbone's config class, the trainer's
    settings, ``profile`` and ``data_dir``. Any registered backbone can train there, so it also
    trains the MLP or the Mamba-3 when run by hand."""
    backbone = registry.get(namespace.get("model"))
    rules = {**validation.COMMON, **TRAINER_RULES, "model": validation.one_of(*registry.BACKBONES),
             "config": registry.config_rule(backbone)}
    missing = sorted(set(rules) - set(namespace))
    if missing:
        raise ValueError(f"the shared training notebook is missing parameter(s) {missing}")
    for name, rule in rules.items():
        rule(name, namespace[name])
    return {name: namespace[name] for name in rules}
