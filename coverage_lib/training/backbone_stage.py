"""A backbone's training stage as its notebook runs it: the data it reads (``training_data``),
the model it builds (``build_model``) and the training run (``train_backbone``)."""
from __future__ import annotations

from typing import Callable

import pandas as pd
import torch

from ..core import paths, schema
from ..datasets import dataset
from ..models import registry
from ..models.normalization import Normalizer
from .train_config import TRAINER_RULES, TrainConfig
from .trainer import seed_everything, train, TrainResult


def build_model(backbone_key: str, stage_params: dict, train_frame: pd.DataFrame,
                assumptions: dict | None):
    """A new model of the registered backbone ``backbone_key`` as its training stage builds it:
    torch's and numpy's RNGs seeded with ``stage_params["seed"]`` first (the initial weights
    follow from it), normalised on ``train_frame``, with the data set's physics
    ``assumptions``. The config fields are the entries of ``stage_params``, or of its
    ``config`` entry where it has one (the shared training notebook's parameters, whichever
    backbone it trains)."""
    backbone = registry.get(backbone_key)
    seed_everything(stage_params["seed"])
    fields = stage_params["config"] if "config" in stage_params else stage_params
    return backbone.build(Normalizer.fit(train_frame).to_dict(), fields, assumptions)


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
                 data_manifest_sha256=dataset.identity(data),
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
