"""The shared trainer's settings: ``TrainConfig``, the data losses it chooses between, and the
rules of the training stages' parameters (``TRAINER_RULES``, ``stage_rules``, ``shared_params``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core import validation
from ..models import registry
from ..models.base import PRECISIONS

LOSSES = ("mse", "multitask")


@dataclass(frozen=True)
class TrainConfig:
    """The shared trainer's settings, checked on construction."""
    epochs: int = 30             # the ceiling: a run that reaches it has not converged
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 10           # epochs without a better validation MAE that end the run
    lr_patience: int = 3         # epochs without a better one after which the rate is cut
    lr_factor: float = 0.5       # what a cut multiplies the rate by
    min_improvement: float = 1e-3  # a validation MAE is better if below best × (1 − this)
    loss: str = "mse"
    seed: int = 0
    grad_clip: float = 1.0
    warmup_epochs: float = 1.0
    # "auto" (CUDA when available, else the CPU), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    # "fp32", or "bf16": forward and loss under bfloat16 autocast, float32 master weights and
    # optimiser (no loss scaling: bf16 has float32's range). On CUDA fast; on a CPU without
    # native bf16 (this project's 2-core machines) it works but is slower than fp32.
    precision: str = "fp32"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience", "lr_patience"):
            validation.positive_int(name, getattr(self, name))
        for name in ("lr", "grad_clip"):
            validation.positive_number(name, getattr(self, name))
        validation.non_negative_number("weight_decay", self.weight_decay)
        validation.one_of(*LOSSES)("loss", self.loss)
        validation.non_negative_int("seed", self.seed)
        validation.non_negative_number("warmup_epochs", self.warmup_epochs)
        validation.unit_interval("min_improvement", self.min_improvement)
        if not 0.0 < self.lr_factor < 1.0:
            raise ValueError(f"lr_factor must lie strictly between 0 and 1; got {self.lr_factor}")
        if self.lr_patience > self.patience:
            raise ValueError(f"lr_patience ({self.lr_patience}) must not exceed patience "
                             f"({self.patience}): the run would stop before the rate is cut")
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
    """The plain mean of the per-target MSEs (``loss`` "mse")."""
    def forward(self, per_target_mse):
        return per_target_mse.mean()


# The shared trainer's parameters (coverage_lib.training.train_config.TrainConfig), in both training stages.
TRAINER_RULES = {
    "epochs": validation.positive_int,
    "batch_size": validation.positive_int,
    "lr": validation.positive_number,
    "weight_decay": validation.non_negative_number,
    "patience": validation.positive_int,
    "lr_patience": validation.positive_int,
    "min_improvement": validation.unit_interval,
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
