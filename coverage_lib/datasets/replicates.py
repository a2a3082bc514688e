"""Replicate runs: the same models trained again on other seeds and on fewer training rows.

A replicate is one (seed, training rows) pair of the seeds stage's parameters
(``04b_seeds``: ``seeds``, ``train_rows``). Seed 0 with every training row is the main run
(``data/<profile>/``); every other replicate is a *chain* of its own under
``data/<profile>/runs/<name>/``: its data set (``write_dataset`` below), one training stage per
registered backbone (the main run's notebooks and parameters, with the replicate's seed and
data) and the replicate evaluation (``notebooks/replicate.ipynb``). The pipeline runs the
chains in-process or on a Dask cluster (``fanout``).

What a seed re-draws, after data generation (the rows themselves never change):

- the split of the in-distribution rows into train, validation and test (the OOD sets are
  fixed by their ranges);
- each backbone's initialisation and batch order (the trainer's ``seed``);
- LightGBM's seed (bagging and feature subsampling), refitting the main run's chosen
  hyper-parameters: the search runs once, in the main run.

A learning-curve replicate is a smaller data set as the data stage would cut it: it trains on
the first ``train_rows`` rows of its seed's training split (so a smaller set is part of every
larger one) and validates on the first rows of its validation split in the split's proportion
(``validation_rows``: ``train_rows`` × 15/70 in the paper, 2,143 rows beside 10,000, at least
1,000); it is tested on the same whole test split, so the curve's points compare. Its epoch
budget grows as the rows shrink (``epochs_for``). (Validating 10,000 training rows on all
112,432 validation rows every epoch took most of such a chain's training time.)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import dataset
from ..core import storage
from ..core.schema import OOD_SPLITS, SPLITS
from ..core.io import atomic_write_text
from ..core.paths import dataset_dir

RUNS_DIR = "runs"
SOURCE_FILE = "replicate_source.json"  # beside the replicate's data set: what it was cut from


@dataclass(frozen=True)
class Replicate:
    seed: int
    train_rows: int | None = None  # None: every training row of the seed's split

    @property
    def name(self) -> str:
        rows = "all" if self.train_rows is None else str(self.train_rows)
        return f"seed{self.seed}-rows{rows}"

    @property
    def is_main(self) -> bool:
        return self.seed == 0 and self.train_rows is None

    def data_dir(self, main_data_dir: str) -> str:
        """Where this replicate's data set, models and results live (the main run's own
        folder for seed 0 with every row)."""
        if self.is_main:
            return main_data_dir
        return f"{main_data_dir}/{RUNS_DIR}/{self.name}"


def replicates(seeds, train_rows) -> list[Replicate]:
    """Every (seed, size) pair: each seed with every training row, then each size of
    ``train_rows`` for each seed. The main run (seed 0, every row) comes first if listed."""
    full = [Replicate(int(s)) for s in seeds]
    sizes = [Replicate(int(s), int(n)) for n in sorted(train_rows) for s in seeds]
    return full + sizes


def epochs_for(epochs: int, n_full: int, n_rows: int | None, max_factor: float) -> int:
    """The epoch budget of a replicate training on ``n_rows`` of ``n_full`` rows: as many
    optimisation steps as the full run (``epochs · n_full / n_rows``), at most ``max_factor``
    times its epochs. Early stopping (the trainer's patience) may end it sooner."""
    if n_rows is None or n_rows >= n_full:
        return epochs
    return int(min(math.ceil(epochs * n_full / n_rows), math.floor(max_factor * epochs)))


def split_order(indices: dict, data_seed: int, seed: int) -> np.ndarray:
    """The in-distribution rows (train, validation and test of the main split) in the order
    seed ``seed`` cuts them: seed 0 reproduces the data stage's order (``dataset.split``)."""
    pool = np.sort(np.concatenate([np.asarray(indices[s]) for s in SPLITS]))
    key = [data_seed, 1] if seed == 0 else [data_seed, 1, seed]
    return np.random.default_rng(key).permutation(pool)


def cut(order: np.ndarray, fractions, train_rows: int | None) -> dict:
    """{train, val, test: sorted row indices} of ``order`` cut by ``fractions`` (as the data
    stage cuts); with ``train_rows``, the first ``train_rows`` training rows and the first
    ``validation_rows`` validation rows (the test rows stay all)."""
    n_train = int(round(fractions[0] * len(order)))
    n_val = int(round(fractions[1] * len(order)))
    train, val = order[:n_train], order[n_train:n_train + n_val]
    if train_rows is not None:
        if train_rows > n_train:
            raise ValueError(f"train_rows must be at most the {n_train} training rows of the "
                             f"split; got {train_rows}")
        train, val = train[:train_rows], val[:validation_rows(train_rows, fractions, n_val)]
    return {"train": np.sort(train), "val": np.sort(val),
            "test": np.sort(order[n_train + n_val:])}


# The fewest validation rows a learning-curve replicate stops its training and fits its
# Selector's thresholds on (the Selector needs 200; a validation MAE over fewer than a thousand
# rows moves with the rows as much as with the epochs).
MIN_VALIDATION_ROWS = 1000


def validation_rows(train_rows: int, fractions, available: int) -> int:
    """A learning-curve replicate's validation rows: ``train_rows`` in the split's proportion
    (validation over training fraction), at least ``MIN_VALIDATION_ROWS``, at most the
    ``available`` ones."""
    wanted = int(round(train_rows * fractions[1] / fractions[0]))
    return min(available, max(MIN_VALIDATION_ROWS, wanted))


def write_dataset(main_data_dir: str, replicate: Replicate, data_seed: int, fractions,
                  log=print) -> bool:
    """Write the replicate's data set under its folder (``dataset/``): its train, validation
    and test splits cut from the main data set's in-distribution rows, the main OOD sets
    unchanged, statistics from its own training rows, and a MANIFEST (written last, every file
    atomically). Skipped (False) when the data set there was cut from the same main data set
    with the same seed, size and fractions."""
    main = dataset_dir(main_data_dir)
    target = dataset_dir(replicate.data_dir(main_data_dir))
    source = {"main_manifest_sha256": dataset.identity(main), "seed": replicate.seed,
              "train_rows": replicate.train_rows, "data_seed": data_seed,
              "split_fractions": list(fractions)}
    recorded = target / SOURCE_FILE
    if (target / dataset.FILE_MANIFEST).is_file() and recorded.is_file() and \
            json.loads(recorded.read_text()) == source:
        try:
            for name in dataset.read_manifest(target):
                dataset.verified_path(target, name)
            return False
        except ValueError as err:
            log(f"{replicate.name}: its data set is damaged ({err}); writing it again")
    stats = dataset.load_stats(main)
    indices = json.loads(dataset.verified_bytes(main, dataset.FILE_INDICES))
    frames = {s: dataset.load_split(main, s) for s in SPLITS}
    for s, frame in frames.items():
        frame.index = np.asarray(indices[s])
    rows = pd.concat(frames.values()).sort_index()
    cuts = cut(split_order(indices, data_seed, replicate.seed), fractions,
               replicate.train_rows)
    (target / dataset.FILE_MANIFEST).unlink(missing_ok=True)
    written = {}
    for s in SPLITS:
        written.update(storage.frame_files(target, dataset.ROWS_SPLIT.format(s),
                                           rows.loc[cuts[s]].reset_index(drop=True)))
    files = {name.format(s): dataset.verified_bytes(main, name.format(s))
             for s in OOD_SPLITS for name in (dataset.FILE_SPLIT, dataset.FILE_SPLIT_PARQUET)}
    own = {**{s: cuts[s].tolist() for s in SPLITS},
           **{s: indices[s] for s in OOD_SPLITS}}
    files[dataset.FILE_INDICES] = dataset._json_bytes(own)
    physics = stats["physics"]
    files[dataset.FILE_STATS] = dataset._json_bytes(dataset.feature_stats(
        rows.loc[cuts["train"]], stats["in_distribution_ranges"], physics["edge_sinr_db"],
        physics["implementation_gap_db"]))
    dataset.write_files(target, files, written=written)
    atomic_write_text(recorded, json.dumps(source, indent=1) + "\n")
    return True

