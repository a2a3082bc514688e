"""Argument checks at the boundary, before any work starts: the rules every parameter of a
stage, a model config, the data generator or a baseline is checked by.

A rule is ``rule(name, value)``: it returns None or raises ValueError naming the parameter, the
value and what is allowed (``positive_int("epochs", 0)``). Each stage's table of rules is
declared by its owner (the data set, a backbone's registry entry, the trainer, the evaluation,
the figures); ``validate`` checks a stage's parameters against one such table, both in the
pipeline (before anything runs) and in the notebook (so an interactive run gets the same
message).
"""
from __future__ import annotations

import math
import re


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:  # True and False are not counts
    return isinstance(v, int) and not isinstance(v, bool)


def positive_int(name, v):
    if not _is_int(v) or v <= 0:
        raise ValueError(f"{name} must be a positive integer; got {v!r}")


def non_negative_int(name, v):
    if not _is_int(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {v!r}")


def number(name, v):
    if not _is_number(v):
        raise ValueError(f"{name} must be a finite number; got {v!r}")


def positive_number(name, v):
    if not _is_number(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}")


def non_negative_number(name, v):
    if not _is_number(v) or v < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0; got {v!r}")


def unit_interval(name, v):
    if not _is_number(v) or not 0 <= v < 1:
        raise ValueError(f"{name} must be a number in [0, 1); got {v!r}")


def boolean(name, v):
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be true or false; got {v!r}")


def non_empty_str(name, v):
    if not isinstance(v, str) or not v:
        raise ValueError(f"{name} must be a non-empty string; got {v!r}")


def fractions(name, v):
    if (not isinstance(v, (list, tuple)) or len(v) != 3 or not all(_is_number(x) for x in v)
            or any(x <= 0 for x in v) or abs(sum(v) - 1.0) > 1e-9):
        raise ValueError(f"{name} must be three positive fractions (train, val, test) summing "
                         f"to 1; got {v!r}")


def range_within(low, high):
    """A rule: a [lo, hi] pair with low ≤ lo < hi ≤ high."""
    def rule(name, v):
        if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_number(x) for x in v)
                or not low <= v[0] < v[1] <= high):
            raise ValueError(f"{name} must be a range [low, high] with {low} ≤ low < high ≤ "
                             f"{high}; got {v!r}")
    return rule


def list_of(rule, empty: bool = False):
    """A rule: a list (non-empty unless ``empty``) whose every item passes ``rule``."""
    def check(name, v):
        if not isinstance(v, (list, tuple)) or not (v or empty):
            raise ValueError(f"{name} must be a {'' if empty else 'non-empty '}list; "
                             f"got {v!r}")
        for i, item in enumerate(v):
            rule(f"{name}[{i}]", item)
    return check


def at_least_one(name, v):
    if not _is_number(v) or v < 1:
        raise ValueError(f"{name} must be a finite number ≥ 1; got {v!r}")


def quantile_open(name, v):
    if not _is_number(v) or not 0 < v < 1:
        raise ValueError(f"{name} must be a number in (0, 1); got {v!r}")


def quantile(name, v):
    if not _is_number(v) or not 0 < v <= 1:
        raise ValueError(f"{name} must be a number in (0, 1]; got {v!r}")


_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def torch_device(name, v):
    """A rule: where torch runs, "auto" (CUDA when available, else the CPU), "cpu", "cuda" or
    "cuda:N". A CUDA device this machine does not have is refused here, before any work
    (torch is imported only to check a CUDA name)."""
    if not isinstance(v, str) or not _DEVICE.fullmatch(v):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {v!r}")
    if v.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(v.partition(":")[2] or 0) >= count:
            here = ["auto", "cpu"] + (["cuda", *(f"cuda:{i}" for i in range(count))]
                                      if count else [])
            what = f"this machine has {count} CUDA device(s)" if count else \
                "CUDA is not available on this machine"
            raise ValueError(f"{name} is {v!r}, but {what}; allowed here: {here}")


def one_of(*allowed):
    def rule(name, v):
        if v not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}; got {v!r}")
    return rule


# Injected by the pipeline into every stage (derived from the profile).
COMMON = {"profile": non_empty_str, "data_dir": non_empty_str}


def validate(stage: str, rules: dict, params: dict, complete: bool = True) -> dict:
    """Check ``params`` of ``stage`` against its owner's ``rules`` (and ``COMMON``): unknown
    names, missing names (if ``complete``), values."""
    rules = {**COMMON, **rules}
    unknown = sorted(set(params) - set(rules))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} for stage {stage}; allowed: "
                         f"{sorted(rules)}")
    missing = sorted(set(rules) - set(params)) if complete else []
    if missing:
        raise ValueError(f"stage {stage} is missing parameter(s) {missing}: every parameter is "
                         f"passed explicitly")
    for name, value in params.items():
        rules[name](name, value)
    return params


def validate_namespace(stage: str, rules: dict, namespace: dict) -> dict:
    """Validate a notebook's parameters from its namespace (``globals()``) against its stage's
    ``rules``."""
    names = {**COMMON, **rules}
    return validate(stage, rules, {k: namespace[k] for k in names if k in namespace})
