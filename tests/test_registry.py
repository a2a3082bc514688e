"""The registry of models (coverage_lib.models.registry). A new backbone is its module, one registry
entry and its section in the profile: the test adds exactly those to a scratch copy of the
project and runs the pipeline up to the evaluation, which trains it (in the shared training
notebook) and evaluates it beside the others. The stages after the evaluation read the
backbones from the registry and the evaluation's results as they are: the finished tiny run
shows that they draw and show every registered backbone."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from coverage_lib.pipeline import definitions, stamps
from coverage_lib.models import registry
from coverage_lib.training import train_config
from conftest import (TINY, TINY_EVAL, TINY_MAMBA, TINY_MLP, TINY_MLP_LAW, TINY_PLOTS, TINY_SEEDS,
                      TRAINER_FIELDS)

REPO = Path(__file__).resolve().parents[1]

TINY_BACKBONE_MODULE = '''
"""TinyNet: a one-hidden-layer backbone, the registry test's extra model."""
from dataclasses import asdict, dataclass

from torch import nn

from ..core import validation
from ..core.schema import FEATURES, TARGETS
from .base import CoverageModel


@dataclass(frozen=True)
class TinyConfig:
    width: int = 8

    def __post_init__(self):
        validation.positive_int("width", self.width)


class TinyNet(CoverageModel):
    def __init__(self, stats, config=TinyConfig(), physics_assumptions=None):
        super().__init__(stats, physics_assumptions)
        self.tiny_config = config
        self.net = nn.Sequential(nn.Linear(len(FEATURES), config.width), nn.SiLU(),
                                 nn.Linear(config.width, len(TARGETS)))

    @property
    def config(self):
        return asdict(self.tiny_config)

    def forward(self, x):
        return self.net(x)
'''
REGISTRY_ENTRY = '''
register(Backbone(
    key="tiny", name="TinyNet", colour="#CC79A7", module="coverage_lib.models.tiny",
    class_name="TinyNet", config_name="TinyConfig", checkpoint="best_tiny_coverage.pth",
    run_name="tiny", stage="03b_train_tiny", notebook=SHARED_NOTEBOOK))
'''
TINY_SECTION = {"model": "tiny", "config": {"width": 8}, **{
    k: v for k, v in TINY_MLP.items() if k not in ("width", "depth", "dropout")}}


@pytest.mark.slow  # the tiny pipeline up to its evaluation in a subprocess
def test_a_new_backbone_is_a_module_a_registry_entry_and_a_params_section(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "coverage_lib", root / "coverage_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # the three additions, and nothing else
    (root / "coverage_lib" / "models" / "tiny.py").write_text(TINY_BACKBONE_MODULE)
    with open(root / "coverage_lib" / "models" / "registry.py", "a") as fh:
        fh.write(REGISTRY_ENTRY)
    (root / "params").mkdir()
    (root / "params" / "tiny.yaml").write_text(yaml.safe_dump({
        "01_data": TINY, "02_train_mlp": TINY_MLP, "03_train_mamba": TINY_MAMBA,
        "03b_train_mlp_law": TINY_MLP_LAW, "03b_train_tiny": TINY_SECTION, "04_evaluate": TINY_EVAL, "04b_seeds": TINY_SEEDS,
        "05_plots": TINY_PLOTS, "06_interactive": {"interactive": False}}))

    env = {**os.environ, "COVERAGE_PROJECT_ROOT": str(root), "PYTHONPATH": str(root)}
    # up to the evaluation: the stages after it are the finished run's test's
    # (test_every_registered_backbone_is_drawn_and_shown)
    run = subprocess.run([sys.executable, "-m", "coverage_lib", "run", "--profile", "tiny",
                          "--until", "04_evaluate"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[5/6] 03b_train_tiny (notebooks/train.ipynb): done" in run.stdout
    assert "[6/6] 04_evaluate (notebooks/04_evaluate.ipynb): done" in run.stdout

    data = root / "data" / "tiny"
    assert (data / "models" / "best_tiny_coverage.pth").is_file()
    history = json.loads((data / "models" / "tiny_training_history.json").read_text())
    assert len(history["val_mae"]) == TINY_SECTION["epochs"]
    metrics = json.loads((data / "results" / "metrics.json").read_text())
    for split, models in metrics["accuracy"].items():
        assert {"oracle", "lightgbm", "mlp", "mamba3", "mlp_law", "tiny", "selector"} == set(models), \
            split
    assert "tiny" in metrics["raw_heads"]["test"] and "tiny" in metrics["physics"]["test"]
    assert "tiny" in metrics["checkpoints"]
    assert {r["model"] for r in metrics["latency"]} >= {"TinyNet", "CoverageMLP",
                                                          "CoverageMamba3"}
    # the Selector still routes between the primary and the backup
    assert set(metrics["routing"]["test"]) == {"rows", "to_primary", "to_backup", "backup_rows",
                                               "reasons"}
    assert metrics["selector"]["pair"] == ["mlp", "mamba3"]


def test_every_registered_backbone_is_drawn_and_shown(finished_tiny):
    """The stages after the evaluation take the backbones from the registry and the
    evaluation's results: in the finished tiny run every figure is drawn and the interactive
    page shows every registered backbone. (The new-backbone test stops at the evaluation, so
    that its pipeline run is that much shorter.)"""
    data = finished_tiny[0] / "data" / "tiny"
    assert len(list((data / "figures").glob("*.png"))) == 11  # figures 01–11 of notebook 05
    interactive = nbformat.read(data / "executed" / "06_interactive.ipynb", as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in interactive.cells])
    assert [b.name for b in registry.BACKBONES.values() if b.name not in shown] == []


def test_stages_follow_the_registry():
    names = [s.name for s in definitions.stages()]
    assert names == ["01_data", *(b.stage for b in registry.BACKBONES.values()),
                     "04_evaluate", "04b_seeds", "05_plots", "06_interactive"]
    for backbone in registry.BACKBONES.values():
        stage = next(s for s in definitions.stages() if s.name == backbone.stage)
        assert stage.writes == (f"models/{backbone.checkpoint}", f"models/{backbone.history}")


@pytest.mark.parametrize("field, value, words", [
    ("key", "mlp", "key 'mlp' is already 'mlp''s"),
    ("checkpoint", "best_coverage.pth", "checkpoint 'best_coverage.pth' is already 'mamba3''s"),
    ("role", "primary", "role 'primary' is already 'mlp''s"),
    ("role", "judge", "role must be one of"),
])
def test_a_clashing_entry_is_refused(field, value, words):
    entry = dict(key="extra", name="Extra", colour="#000000", module="m", class_name="Extra",
                 config_name="ExtraConfig", checkpoint="best_extra.pth", run_name="extra",
                 stage="03c_train_extra", notebook=registry.SHARED_NOTEBOOK)
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        registry.register(registry.Backbone(**{**entry, field: value}))
    assert "extra" not in registry.BACKBONES


def test_the_shared_notebook_checks_its_parameters():
    good = {"profile": "quick", "data_dir": "data/quick", "model": "mlp",
            "config": {"width": 16, "depth": 1}, **{k: TINY_MLP[k] for k in TRAINER_FIELDS}}
    assert train_config.shared_params(good)["model"] == "mlp"
    with pytest.raises(ValueError, match="model must be one of"):
        train_config.shared_params({**good, "model": "transformer"})
    with pytest.raises(ValueError, match="unknown field 'heads' of MLPConfig"):
        train_config.shared_params({**good, "config": {"heads": 4}})
    with pytest.raises(ValueError, match="width must be a positive integer; got 0"):
        train_config.shared_params({**good, "config": {"width": 0}})
    with pytest.raises(ValueError, match=textwrap.dedent("missing parameter")):
        train_config.shared_params({k: v for k, v in good.items() if k != "seed"})


def test_code_that_reads_the_registry_depends_on_every_backbone_module():
    files = {str(p.relative_to(REPO)) for p in stamps.library_files(
        "from coverage_lib.models import registry\n")}
    for backbone in registry.BACKBONES.values():
        assert backbone.module.replace(".", "/") + ".py" in files, backbone.key


def test_a_backbone_without_a_tiny_section_trains_the_quick_model_for_one_epoch(monkeypatch):
    import dataclasses

    import conftest

    law = registry.get("mlp_law")
    monkeypatch.delitem(conftest.TINY_SECTIONS, law.stage)
    quick = yaml.safe_load((REPO / "params" / "quick.yaml").read_text())[law.stage]
    section = conftest.tiny_section(law)
    assert section["config"] == quick["config"] and section["epochs"] == 1
    assert conftest.tiny_sections()[law.stage] == section
    with pytest.raises(KeyError, match="no section '03c_train_new' for the registered backbone"):
        conftest.tiny_section(dataclasses.replace(law, stage="03c_train_new"))
