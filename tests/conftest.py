"""Shared fixtures: a scratch project with a tiny profile, and one finished run of it (made
once per test session; tests work on copies)."""
import dataclasses
import os
import shutil
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`make test` runs two workers on two cores) each worker, and every
    # notebook kernel and process it starts, uses one CPU thread: two-thread workers would
    # fight over the cores. A test comparing two runs makes both in one worker, so they agree.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {"n_samples": 3000, "seed": 7, "split_fractions": [0.7, 0.15, 0.15],
        "id_frequency_ghz": [0.5, 40.0], "id_rain_rate_mmh": [0.0, 40.0],
        "id_distance_m": [10.0, 2500.0], "edge_sinr_db": -6.0, "implementation_gap_db": 3.0,
        "n_plot_rows": 1000, "chunk_rows": 1000}  # three chunks
TINY_MLP = {"epochs": 1, "batch_size": 256, "lr": 0.002, "weight_decay": 0.0, "patience": 2,
            "lr_patience": 1, "min_improvement": 0.001,
            "loss": "mse", "seed": 0, "device": "auto", "precision": "fp32", "width": 16,
            "depth": 1, "dropout": 0.0}
TINY_MAMBA = {"epochs": 1, "batch_size": 256, "lr": 0.003, "weight_decay": 0.0, "patience": 2,
              "lr_patience": 1, "min_improvement": 0.001,
              "loss": "mse", "seed": 0, "device": "auto", "precision": "fp32", "d_model": 8,
              "d_state": 4, "n_layers": 1, "headdim": 8, "expand": 1, "bidirectional": False,
              "scan": "parallel", "physics_rows": 200}
TINY_MLP_LAW = {"model": "mlp_law", "config": {"width": 16, "depth": 1, "dropout": 0.0},
                **{k: TINY_MLP[k] for k in ("epochs", "batch_size", "lr", "weight_decay",
                                            "patience", "lr_patience", "min_improvement",
                                            "loss", "seed", "device", "precision")}}
TINY_EVAL = {"seed": 0, "lightgbm_space": {"num_leaves": [7, 7], "learning_rate": [0.2, 0.2],
                                            "min_child_samples": [20, 20]},
             "lightgbm_candidates": 1, "lightgbm_search_rows": 1000, "lightgbm_max_rounds": 30,
             "lightgbm_early_stopping": 5, "lightgbm_min_improvement": 0.0,
             "selector_tolerance": 0.01,
             "physics_rows": 100, "latency_repeats": 2, "onnx_backbones": ["mlp"]}
TINY_SEEDS = {"seeds": [0], "train_rows": [], "max_epoch_factor": 2, "level": 0.95,
              "chain_threads": 1, "budget_reference": {}}
TINY_PLOTS = {"seed": 0, "n_plot_rows": 200, "map_points": 9, "map_extent_m": 3000.0}
# The tiny profile's section of the registered backbones' training stages, where it has its own
# small model; any other backbone's is derived from the quick profile (``tiny_section``).
TINY_SECTIONS = {"02_train_mlp": TINY_MLP, "03_train_mamba": TINY_MAMBA,
                 "03b_train_mlp_law": TINY_MLP_LAW}
TRAINER_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "lr_patience",
                  "min_improvement", "loss", "seed", "device", "precision")


def tiny_section(backbone) -> dict:
    """The tiny profile's section of ``backbone``'s (a registry entry's) training stage: its own
    (``TINY_SECTIONS``), else the quick profile's model with the tiny trainer settings (one
    epoch): a newly registered backbone needs no change here."""
    if backbone.stage in TINY_SECTIONS:
        return TINY_SECTIONS[backbone.stage]
    quick = yaml.safe_load((REPO / "params" / "quick.yaml").read_text())
    if backbone.stage not in quick:
        raise KeyError(f"params/quick.yaml has no section {backbone.stage!r} for the "
                       f"registered backbone {backbone.key!r}: add it to the profiles")
    return {**quick[backbone.stage], **{k: TINY_MLP[k] for k in TRAINER_FIELDS}}


def tiny_sections() -> dict:
    """{training stage: its tiny section} of every registered backbone."""
    from coverage_lib.models import registry

    return {b.stage: tiny_section(b) for b in registry.BACKBONES.values()}


def tiny_config(backbone):
    """The config of ``backbone`` (a registry entry) in the tiny profile: its stage's section
    (its ``config`` entry for the shared notebook), its config class's defaults for the
    fields the section leaves out."""
    section = tiny_section(backbone)
    fields = section.get("config", section)
    config_class = backbone.classes()[1]
    names = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in fields.items() if k in names})


def __getattr__(name):
    """``STAGE_COUNT``, the pipeline's number of stages (one training stage per registered
    backbone), computed on first use: the pipeline's definitions import torch."""
    if name == "STAGE_COUNT":
        from coverage_lib.pipeline import definitions
        return len(definitions.stages())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_project(root: Path) -> Path:
    """The project's notebooks, its library (linked) and a 'tiny' profile under ``root``."""
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "params").mkdir()
    write_profile(root, "tiny", TINY)
    (root / "coverage_lib").symlink_to(REPO / "coverage_lib")
    return root


def write_profile(root, name, data_params, mlp_params=TINY_MLP, seeds=TINY_SEEDS):
    """params/<name>.yaml under ``root``: the tiny profile, a section per stage (every
    registered backbone's training stage included), with the data, primary-training and seeds
    sections given."""
    (root / "params" / f"{name}.yaml").write_text(
        yaml.safe_dump({"01_data": data_params, **tiny_sections(), "02_train_mlp": mlp_params,
                        "04_evaluate": TINY_EVAL, "04b_seeds": seeds,
                        "05_plots": TINY_PLOTS, "06_interactive": {"interactive": False}}))


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A scratch copy of the project's notebooks and a 'tiny' profile, as the project root."""
    root = make_project(tmp_path / "project")
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def finished_tiny(tmp_path_factory):
    """(project root, summary) of one finished run of the tiny profile, made once."""
    from coverage_lib.pipeline import run

    root = make_project(tmp_path_factory.mktemp("finished") / "project")
    previous = os.environ.get("COVERAGE_PROJECT_ROOT")
    os.environ["COVERAGE_PROJECT_ROOT"] = str(root)
    try:
        summary = run.run("tiny", log=lambda *_: None)
    finally:
        if previous is None:
            os.environ.pop("COVERAGE_PROJECT_ROOT")
        else:
            os.environ["COVERAGE_PROJECT_ROOT"] = previous
    return root, summary


# Fixtures that run the pipeline (papermill notebooks, the tiny profile) or start Chromium: a
# test that uses one, directly or through another fixture, is marked slow. Tests doing such work
# without one carry @pytest.mark.slow themselves.
SLOW_FIXTURES = ("finished_tiny", "html")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(name in item.fixturenames for name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)


def scratch_copy(finished_tiny, tmp_path, monkeypatch) -> Path:
    """A copy of the finished run to change, as the current project root."""
    root = tmp_path / "project"
    shutil.copytree(finished_tiny[0], root, symlinks=True)
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(root))
    return root
