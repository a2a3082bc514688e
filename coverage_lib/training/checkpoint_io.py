"""Checkpoint and resume-state files of the shared trainer: written atomically, read back with
``torch.load(weights_only=True)`` (no code from a file ever runs), checked before use.

Both hold CPU tensors only, so a file written on a GPU loads anywhere.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import asdict
from pathlib import Path

import torch

from .. import __version__
from ..core.io import atomic_write_bytes
from ..core.schema import FEATURES, TARGETS
from ..models import registry
from ..physics import propagation

CHECKPOINT_FORMAT = "d2tl-coverage-checkpoint/1"


def on_cpu(obj):
    """``obj`` (a state dict, nested dicts and lists) with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def save_torch(path: Path, obj) -> None:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically (a kill leaves the old file)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path, fingerprint: dict, log):
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


def mark_completed(path: Path) -> None:
    """Flag the resumable state at ``path`` as a finished run's (a new run starts afresh)."""
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["completed"] = True
        save_torch(path, state)


def checkpoint_dict(model, epoch, val_metrics, config, manifest_sha256, dataset_stats) -> dict:
    """The best epoch's checkpoint: weights, config, normalisation, metrics, provenance."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "model_config": model.config,
        "model_state_dict": on_cpu(model.state_dict()),
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
