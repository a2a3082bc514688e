"""The shared trainer's optimiser and learning-rate schedule: AdamW with weight decay on weight
matrices only; a linear warm-up over the first epoch, then the peak rate until the validation
MAE stops improving, when it is cut (``reduce_on_plateau``).

Why not a cosine to zero at the epoch cap: with it the rate vanishes at the cap whatever the
model has learnt, so the last epochs always look like the best and "still improving" says
nothing; with a constant rate and cuts on plateaus the run ends when the model stops learning
(early stopping), and the cap is only a ceiling."""
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


def warm_up(warmup_steps: int):
    """The schedule as a factor of the current base rate per step: linear warm-up over
    ``warmup_steps``, then 1."""
    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps)
    return factor


def build_scheduler(optimizer, steps_per_epoch: int, warmup_epochs: float):
    """``warm_up`` over ``warmup_epochs`` epochs' steps (at least one), stepped once per batch;
    ``reduce_on_plateau`` lowers its base rates."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, warm_up(max(1, int(warmup_epochs * steps_per_epoch))))


def reduce_on_plateau(scheduler, bad_epochs: int, lr_patience: int, lr_factor: float) -> bool:
    """Multiply the scheduler's base rates by ``lr_factor`` after every ``lr_patience``
    consecutive epochs without a better validation MAE (``bad_epochs`` of them now); True
    when it did. The base rates are in the scheduler's state, so a resumed run keeps them."""
    if bad_epochs == 0 or bad_epochs % lr_patience:
        return False
    scheduler.base_lrs = [lr * lr_factor for lr in scheduler.base_lrs]
    for group in scheduler.optimizer.param_groups:  # from the next step on, not the next-but-one
        group["lr"] *= lr_factor
    return True
