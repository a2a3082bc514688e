"""One registry of models: every backbone is named here once, with what the rest of the project
needs to find, train, evaluate, plot and route it.

The pipeline builds its training stages from it, the notebooks find checkpoints and histories
through it, the evaluation scores every registered backbone, the figures colour and name them
from it, and the Selector takes its primary and backup from the ``role`` of each entry.
Adding a backbone is its module, one ``register(Backbone(...))`` line below (with the rules of
its training stage's own parameters) and its section in ``params/<profile>.yaml`` (its
training notebook may be the shared ``notebooks/train.ipynb``).

Classes are named by module and attribute and imported on first use, so reading the registry
(the pipeline's command line) does not import torch.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path

from ..core import validation
from ..core.paths import models_dir

ROLES = ("primary", "backup", "")  # the Selector's default answer, its fallback, compared only
# The training notebook any backbone may share; its stage's parameters are the trainer's, the
# backbone's key (``model``) and its config (``config``, checked by building the config class).
SHARED_NOTEBOOK = "notebooks/train.ipynb"


@dataclass(frozen=True)
class Backbone:
    key: str           # in metrics.json, the Selector's routes and the code: "mlp", "mamba3"
    name: str          # display name (tables, figures)
    colour: str        # one colour per model in every figure
    module: str        # where its model and config classes live
    class_name: str
    config_name: str
    checkpoint: str    # file under data/<profile>/models/
    run_name: str      # its history is <run_name>_training_history.json (and the resume state)
    stage: str         # the pipeline stage that trains it
    notebook: str      # that stage's notebook
    role: str = ""     # one of ROLES
    # Rules of its training stage's own parameters, beside the trainer's (``training``): the
    # config fields a dedicated notebook takes one by one; the shared notebook's ``model`` and
    # ``config`` are added by ``stage_rules``.
    rules: dict = dataclasses.field(default_factory=dict)

    @property
    def stage_rules(self) -> dict:
        """The rules of this backbone's own parameters in its training stage."""
        if self.notebook == SHARED_NOTEBOOK:
            return {"model": validation.one_of(self.key), "config": config_rule(self),
                    **self.rules}
        return dict(self.rules)

    @property
    def history(self) -> str:
        return f"{self.run_name}_training_history.json"

    def checkpoint_path(self, data_dir) -> Path:
        return models_dir(data_dir) / self.checkpoint

    def history_path(self, data_dir) -> Path:
        return models_dir(data_dir) / self.history

    def classes(self) -> tuple[type, type]:
        """(model class, config class)."""
        module = importlib.import_module(self.module)
        return getattr(module, self.class_name), getattr(module, self.config_name)

    def build(self, stats: dict, stage_params: dict, physics_assumptions: dict | None = None):
        """A new model: its config from the entries of ``stage_params`` (a training stage's
        parameters) that name config fields, the normalisation ``stats``, the data set's
        physics assumptions."""
        model_class, config_class = self.classes()
        fields = {f.name for f in dataclasses.fields(config_class)}
        config = config_class(**{k: v for k, v in stage_params.items() if k in fields})
        return model_class(stats, config, physics_assumptions=physics_assumptions)


BACKBONES: dict[str, Backbone] = {}


def register(backbone: Backbone) -> Backbone:
    """Add a backbone; a key, stage, checkpoint, history or class already taken → ValueError."""
    if backbone.role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}; got {backbone.role!r}")
    for other in BACKBONES.values():
        for field in ("key", "stage", "checkpoint", "run_name", "class_name"):
            if getattr(other, field) == getattr(backbone, field):
                raise ValueError(f"backbone {backbone.key!r}: {field} "
                                 f"{getattr(backbone, field)!r} is already {other.key!r}'s")
        if backbone.role and other.role == backbone.role:
            raise ValueError(f"backbone {backbone.key!r}: role {backbone.role!r} is already "
                             f"{other.key!r}'s")
    BACKBONES[backbone.key] = backbone
    return backbone


def config_rule(backbone: Backbone):
    def rule(name, value):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a mapping of {backbone.config_name} fields; "
                             f"got {value!r}")
        config_class = backbone.classes()[1]
        fields = [f.name for f in dataclasses.fields(config_class)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(f"{name} names unknown field {unknown[0]!r} of "
                             f"{backbone.config_name}; its fields: {fields}")
        config_class(**value)  # its own checks name the field and the value
    return rule


def unregister(key: str) -> None:
    BACKBONES.pop(key, None)


# The models that are not backbones: display names and colours (Okabe–Ito; black for the
# references, grey for the LightGBM baseline: every pair of model colours is at least
# ΔE*ab 40 apart, tests/test_figures.py).
OTHER_NAMES = {"oracle": "oracle (noise floor)", "physics": "physics (link budget)",
               "lightgbm": "LightGBM", "selector": "Selector"}
OTHER_COLOURS = {"oracle": "#000000", "physics": "#000000", "lightgbm": "#888888",
                 "selector": "#009E73"}


def display_names() -> dict:
    """{key: display name} of every model: the references, LightGBM, each backbone, the
    Selector."""
    others = {k: v for k, v in OTHER_NAMES.items() if k != "selector"}
    return {**others, **{k: b.name for k, b in BACKBONES.items()},
            "selector": OTHER_NAMES["selector"]}


def colours() -> dict:
    """{display name: colour}: one colour per model, the same in every figure."""
    return {**{OTHER_NAMES[k]: c for k, c in OTHER_COLOURS.items()},
            "physics": "#000000", "oracle": "#000000", "physics (median)": "#000000",
            **{b.name: b.colour for b in BACKBONES.values()}}


def get(key: str) -> Backbone:
    if key not in BACKBONES:
        raise ValueError(f"model must be one of {list(BACKBONES)}; got {key!r}")
    return BACKBONES[key]


def by_role(role: str) -> Backbone:
    """The backbone with ``role`` ("primary" or "backup")."""
    found = [b for b in BACKBONES.values() if b.role == role]
    if len(found) != 1:
        raise ValueError(f"exactly one backbone must have role {role!r}; found "
                         f"{[b.key for b in found]}")
    return found[0]


def by_class_name(class_name: str) -> Backbone:
    """The backbone whose model class is ``class_name`` (a checkpoint names its class)."""
    for backbone in BACKBONES.values():
        if backbone.class_name == class_name:
            return backbone
    raise ValueError(f"unknown model class {class_name!r}; known: "
                     f"{[b.class_name for b in BACKBONES.values()]}")


def backbone_key(name, v):
    """A rule: the key of a registered backbone (``BACKBONES``)."""
    validation.one_of(*BACKBONES)(name, v)


register(Backbone(
    key="mlp", name="CoverageMLP", colour="#0072B2",
    module="coverage_lib.models.mlp", class_name="CoverageMLP", config_name="MLPConfig",
    checkpoint="best_mlp_coverage.pth", run_name="mlp",
    stage="02_train_mlp", notebook="notebooks/02_train_mlp.ipynb", role="primary",
    rules={"width": validation.positive_int, "depth": validation.positive_int,
           "dropout": validation.unit_interval}))
register(Backbone(
    key="mamba3", name="CoverageMamba3", colour="#D55E00",
    module="coverage_lib.models.mamba_backbone", class_name="CoverageMamba3",
    config_name="Mamba3Config", checkpoint="best_coverage.pth", run_name="mamba",
    stage="03_train_mamba", notebook="notebooks/03_train_mamba.ipynb", role="backup",
    rules={"d_model": validation.positive_int, "d_state": validation.positive_int,
           "n_layers": validation.positive_int, "headdim": validation.positive_int,
           "expand": validation.positive_int, "bidirectional": validation.boolean,
           "scan": validation.one_of("parallel", "recurrent", "fused", "auto"),
           "physics_rows": validation.positive_int}))
register(Backbone(
    key="mlp_law", name="CoverageMLP + law head", colour="#CC79A7",
    module="coverage_lib.models.mlp", class_name="CoverageLawMLP", config_name="MLPConfig",
    checkpoint="best_mlp_law_coverage.pth", run_name="mlp_law",
    stage="03b_train_mlp_law", notebook=SHARED_NOTEBOOK))

