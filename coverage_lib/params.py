"""Pipeline profiles and parameter validation, at the boundary, before any work starts.

Each notebook's parameters are checked by the rules of its stage here, both by the pipeline
(before running anything) and by the notebook itself (so an interactive run gets the same
message). A message names the parameter, the value and what is allowed. The rules are also
the library's one set of argument checks (model and trainer configs, the data generator, the
baselines): ``positive_int(name, value)`` and its siblings raise ValueError or return None.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from .domain import DOMAIN
from .paths import project_root

PARAMS_DIR = "params"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (project_root() / PARAMS_DIR).glob("*.yaml"))


def load_profile(profile: str) -> dict:
    """{stage name: {parameter: value}} of ``params/<profile>.yaml``."""
    allowed = available_profiles()
    if profile not in allowed:
        raise ValueError(f"profile must be one of {allowed}; got {profile!r}")
    data = yaml.safe_load((project_root() / PARAMS_DIR / f"{profile}.yaml").read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"params/{profile}.yaml must map each stage name to its parameters")
    return data


# -- rules --------------------------------------------------------------------------------

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


def seeds(name, v):
    """The seeds of the replicate runs: distinct non-negative integers, 0 (the main run)
    among them."""
    list_of(non_negative_int)(name, v)
    if 0 not in v or len(set(v)) != len(v):
        raise ValueError(f"{name} must be distinct seeds including 0 (the main run); got {v!r}")


def at_least_one(name, v):
    if not _is_number(v) or v < 1:
        raise ValueError(f"{name} must be a finite number ≥ 1; got {v!r}")


def quantile_open(name, v):
    if not _is_number(v) or not 0 < v < 1:
        raise ValueError(f"{name} must be a number in (0, 1); got {v!r}")


def lightgbm_chosen(name, v):
    """A rule: {target: LightGBM parameters} for every target (the chosen candidates)."""
    from . import baselines  # baselines builds on this module
    from .dataset import TARGETS

    if not isinstance(v, dict) or sorted(v) != sorted(TARGETS):
        raise ValueError(f"{name} must map each target {TARGETS} to its LightGBM parameters; "
                         f"got {v!r}")
    for target, candidate in v.items():
        baselines.check_candidates(f"{name}[{target!r}]", [candidate])


def quantile(name, v):
    if not _is_number(v) or not 0 < v <= 1:
        raise ValueError(f"{name} must be a number in (0, 1]; got {v!r}")


def backbone_key(name, v):
    """A rule: the key of a registered backbone (``registry.BACKBONES``)."""
    from . import registry  # registry builds on this module

    one_of(*registry.BACKBONES)(name, v)


def lightgbm_space(name, v):
    """A rule: a LightGBM search space, {parameter: [low, high]} (``baselines.check_space``)."""
    from . import baselines  # baselines builds on this module

    baselines.check_space(name, v)


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


# The shared trainer's parameters (coverage_lib.training.TrainConfig), in both training stages.
TRAINER_RULES = {
    "epochs": positive_int,
    "batch_size": positive_int,
    "lr": positive_number,
    "weight_decay": non_negative_number,
    "patience": positive_int,
    "loss": one_of("mse", "multitask"),
    "seed": non_negative_int,
    "device": torch_device,
    "precision": one_of("fp32", "bf16"),
}
# Rules per stage; every parameter of a stage's notebook has one. Later stages add theirs.
RULES = {
    "01_data": {
        "n_samples": positive_int,
        "seed": non_negative_int,
        "split_fractions": fractions,
        "id_frequency_ghz": range_within(*DOMAIN["frequency_ghz"]),
        "id_rain_rate_mmh": range_within(*DOMAIN["rain_rate_mmh"]),
        "id_distance_m": range_within(*DOMAIN["distance_m"]),
        "edge_sinr_db": number,
        "implementation_gap_db": number,
        "n_plot_rows": positive_int,
        "chunk_rows": positive_int,
    },
    "02_train_mlp": {
        **TRAINER_RULES,
        "width": positive_int,
        "depth": positive_int,
        "dropout": unit_interval,
    },
    "03_train_mamba": {
        **TRAINER_RULES,
        "d_model": positive_int,
        "d_state": positive_int,
        "n_layers": positive_int,
        "headdim": positive_int,
        "expand": positive_int,
        "bidirectional": boolean,
        "scan": one_of("parallel", "recurrent", "fused", "auto"),
        "physics_rows": positive_int,
    },
    "04_evaluate": {
        "seed": non_negative_int,
        "lightgbm_space": lightgbm_space,
        "lightgbm_candidates": positive_int,
        "lightgbm_search_rows": positive_int,
        "lightgbm_max_rounds": positive_int,
        "lightgbm_early_stopping": positive_int,
        "lightgbm_min_improvement": unit_interval,
        "selector_quantile": quantile,
        "physics_rows": positive_int,
        "latency_repeats": positive_int,
        "onnx_backbones": list_of(lambda name, v: backbone_key(name, v)),
    },
    "04b_seeds": {
        "seeds": seeds,
        "train_rows": list_of(positive_int, empty=True),
        "max_epoch_factor": at_least_one,
        "level": quantile_open,
        "chain_threads": positive_int,
    },
    # The replicate evaluation of a chain (notebooks/replicate.ipynb): not a stage of a
    # profile; the pipeline derives its parameters from the seeds and evaluation stages'.
    "replicate": {
        "seed": non_negative_int,
        "lightgbm_params": lightgbm_chosen,
        "lightgbm_max_rounds": positive_int,
        "lightgbm_early_stopping": positive_int,
        "lightgbm_min_improvement": unit_interval,
        "selector_quantile": quantile,
        "physics_rows": non_negative_int,  # 0: no rule checks (a learning-curve replicate)
    },
    "05_plots": {
        "seed": non_negative_int,
        "n_plot_rows": positive_int,
        "map_points": positive_int,
        "map_extent_m": positive_number,
    },
    "06_interactive": {
        "interactive": boolean,
    },
}
# Injected by the pipeline into every stage (derived from the profile).
COMMON = {"profile": non_empty_str, "data_dir": non_empty_str}


def validate(stage: str, params: dict, complete: bool = True) -> dict:
    """Check ``params`` of ``stage``: unknown names, missing names (if ``complete``), values."""
    if stage not in RULES:
        raise ValueError(f"stage must be one of {sorted(RULES)}; got {stage!r}")
    rules = {**COMMON, **RULES[stage]}
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


def validate_namespace(stage: str, namespace: dict) -> dict:
    """Validate a notebook's parameters from its namespace (``globals()``)."""
    names = {**COMMON, **RULES[stage]}
    return validate(stage, {k: namespace[k] for k in names if k in namespace})
