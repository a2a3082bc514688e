"""Stamps follow the layers: a stage's hash covers only the library modules its notebook
imports (transitively), so an edit to a layer above a stage's reruns nothing of it. Hashes
only: no notebook runs."""
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINING = ("02_train_mlp", "03_train_mamba", "03b_train_mlp_law")


@pytest.fixture()
def library_copy(tmp_path, monkeypatch):
    """A project root with real copies of the notebooks and the library (not links: the tests
    edit the copy), as the current project root."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "coverage_lib", root / "coverage_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(root))
    return root


def hashes() -> dict:
    """{stage: its hash}, every stage of the main run and of a replicate chain ("chain "
    before its name) with the same parameters and no input files."""
    from coverage_lib.pipeline import definitions, stamps

    return {**{s.name: stamps.stage_hash(s, {"data_dir": "data/none"})
               for s in definitions.stages()},
            **{f"chain {s.name}": stamps.stage_hash(s, {"data_dir": "data/none"})
               for s in definitions.chain_stages()}}


def changed_by(root: Path, module: str) -> set:
    """The stages whose hash an edit of ``module`` (a path under coverage_lib/) changes: a
    statement added, not a docstring (those are not hashed)."""
    before = hashes()
    path = root / "coverage_lib" / module
    path.write_text(path.read_text() + "\n_EDITED_FOR_THE_TEST = 1\n")
    after = hashes()
    path.write_text(path.read_text().replace("\n_EDITED_FOR_THE_TEST = 1\n", ""))
    return {name for name in before if before[name] != after[name]}


@pytest.mark.parametrize("module", ["report/tables.py", "report/page_values.py",
                                    "report/verdicts.py", "report/figures.py"])
def test_an_edit_to_the_report_layer_reruns_no_training_and_no_evaluation(library_copy, module):
    # computing and showing apart: the evaluations (the main run's and every replicate
    # chain's) write results and show none of them, so a table's look reruns only the stages
    # that read results (the seeds' intervals, the figures, the interactive page)
    changed = changed_by(library_copy, module)
    evaluations = {"04_evaluate", *(f"chain {s.name}" for s in _chain_stages())}
    assert not changed & {"01_data", *TRAINING, *evaluations}, changed
    assert "05_plots" in changed


def _chain_stages():
    from coverage_lib.pipeline import definitions

    return definitions.chain_stages()


def test_an_edit_to_the_training_layer_reruns_the_training_stages(library_copy):
    changed = changed_by(library_copy, "training/trainer.py")
    assert set(TRAINING) <= changed and "01_data" not in changed, changed


def test_every_stage_depends_on_the_core_layer(library_copy):
    from coverage_lib.pipeline import definitions

    assert changed_by(library_copy, "core/__init__.py") == \
        {s.name for s in definitions.stages()} | {f"chain {s.name}" for s in _chain_stages()}
