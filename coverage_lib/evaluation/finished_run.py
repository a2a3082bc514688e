"""One finished run opened for reading (``load_run``): what notebooks 05_plots and
06_interactive, and anyone using the trained models, start from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core import paths
from ..datasets import dataset
from . import seeds_stage
from .result_files import load_histories, read_results
from .scoring import Models, load_models


@dataclass
class FinishedRun:
    """A run's outputs: its data set's statistics (``dataset.load_stats``) and the physics
    assumptions the data were made with, every model (``scoring.Models``), each backbone's
    training history, and, where asked for, ``metrics.json`` (``results``) and ``seeds.json``
    (``seeds``; None where not read)."""
    data_dir: Path
    stats: dict
    assumptions: dict
    models: Models
    histories: dict
    results: dict | None = None
    seeds: dict | None = None

    def split(self, name: str) -> pd.DataFrame:
        """One split of the run's data set (``dataset.load_split``), e.g. "test"."""
        return dataset.load_split(paths.dataset_dir(self.data_dir), name)

    def sample(self, name: str, rows: int, seed: int) -> pd.DataFrame:
        """``rows`` rows of split ``name`` drawn with ``seed`` (all of them where it has
        fewer): the rows a figure plots."""
        frame = self.split(name)
        return frame.sample(n=min(rows, len(frame)), random_state=seed)


def load_run(data_dir, *, scores: bool = True, lightgbm: bool = True) -> FinishedRun:
    """The finished run in ``data_dir``: every backbone and the Selector with its saved
    thresholds (``scoring.load_models``; LightGBM too if ``lightgbm``), the data set's
    statistics and physics assumptions, the training histories and, if ``scores``,
    ``metrics.json`` (refused if computed on another data set: ``result_files.read_results``)
    and ``seeds.json`` (``seeds_stage.read``). Anything missing → ValueError naming the file
    and the notebook that writes it."""
    results = read_results(data_dir) if scores else None  # first: the clearest refusal
    models = load_models(data_dir, lightgbm=lightgbm)
    stats = dataset.load_stats(paths.dataset_dir(data_dir))
    return FinishedRun(data_dir=paths.resolve(data_dir), stats=stats,
                       assumptions=dataset.physics_assumptions(stats), models=models,
                       histories=load_histories(data_dir), results=results,
                       seeds=seeds_stage.read(data_dir) if scores else None)
