"""The shared trainer's optimiser and learning-rate schedule: AdamW with weight decay on weight
matrices only, linear warm-up then cosine decay, stepped once per batch."""
from __future__ import annotations

import math

import torch


def no_weight_decay(model) -> set[str]:
    """Names of the parameters AdamW does not decay: every one of fewer than two dimensions
    (linear biases, norm scales) and every one a module flags ``_no_weight_decay`` (the
    mamba-ssm convention: the Mamba-3's Δ and B/C biases, D, the token-embedding biases).
    Weight decay thus acts on weight matrices only."""
    return {n for n, p in model.named_parameters()
            if p.ndim < 2 or getattr(p, "_no_weight_decay", False)}


def build_optimizer(model, criterion, lr: float, weight_decay: float):
    """AdamW over ``model``'s parameters (decayed unless ``no_weight_decay`` names them) and the
    loss's own (a multi-task loss's log-variances, never decayed)."""
    undecayed = no_weight_decay(model)
    decay = [p for n, p in model.named_parameters() if n not in undecayed]
    no_decay = [p for n, p in model.named_parameters() if n in undecayed]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay + list(criterion.parameters()), "weight_decay": 0.0}], lr=lr)


def get_lr(total_steps: int, warmup_steps: int):
    """The schedule as a factor of the peak learning rate per step: linear warm-up over
    ``warmup_steps``, then cosine decay to zero at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def build_scheduler(optimizer, steps_per_epoch: int, epochs: int, warmup_fraction: float):
    """``get_lr``'s schedule over ``epochs`` epochs, at least one warm-up step."""
    total = steps_per_epoch * epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, get_lr(total, max(1, int(warmup_fraction * total))))
