"""The papermill pipeline: validation before any work, skip/force by content hash, failures
named by notebook and cell. Runs in a scratch project root (COVERAGE_PROJECT_ROOT)."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from coverage_lib.core import validation
from coverage_lib.pipeline import definitions, execution, publishing, run, stamps

from conftest import STAGE_COUNT, TINY, TINY_MLP, scratch_copy, write_profile

REPO = Path(__file__).resolve().parents[1]


def test_run_skip_force_and_rerun_on_change(finished_tiny, tmp_path, monkeypatch):
    first = finished_tiny[1]  # the session's first run of the tiny profile, in a fresh root
    assert [v["status"] for v in first.values()] == ["ran"] * STAGE_COUNT
    project = scratch_copy(finished_tiny, tmp_path, monkeypatch)
    logs = []
    assert (project / "data" / "tiny" / "models" / "best_mlp_coverage.pth").exists()
    data = project / "data" / "tiny"
    manifest = (data / "dataset" / "MANIFEST.txt").read_text()
    assert "train_data.json" in manifest and "feature_stats.json" in manifest
    executed = nbformat.read(data / "executed" / "01_data.ipynb", as_version=4)
    params_cell = next(c for c in executed.cells if "parameters" in c.metadata.get("tags", []))
    assert "remove-cell" in params_cell.metadata["tags"]
    injected = next(c for c in executed.cells
                    if "injected-parameters" in c.metadata.get("tags", []))
    assert "n_samples = 3000" in injected.source
    book = project / "book" / "executed"
    assert not book.exists()  # a run does not touch the book: publishing names a profile
    assert publishing.publish(log=logs.append) == "tiny"  # the only finished profile
    assert (book / "01_data.ipynb").exists()
    assert (book / "MANIFEST.txt").read_text() == manifest
    assert publishing.check_book() == "tiny"
    headline = (book / "profile.md").read_text()
    assert "**tiny** profile" in headline
    # Evaluation, figures and provenance: the book's inputs.
    from coverage_lib.evaluation import result_files
    metrics = result_files.read_metrics(data / "results" / "metrics.json")
    assert set(metrics["accuracy"]["test"]) == set(result_files.model_keys())
    assert (project / "book" / "executed" / "figures" / "01_training_loss_and_val_mae.png").exists()
    assert (data / "figures" / "01_training_loss_and_val_mae.pdf").exists()
    provenance = (project / "book" / "executed" / "provenance.md").read_text()
    assert "04_evaluate" in provenance and "sha256" in provenance

    assert [v["status"] for v in run.run("tiny", log=logs.append).values()] == \
        ["skipped"] * STAGE_COUNT
    assert any("skipped" in line for line in logs)
    # Prose is not hashed: a reworded sentence reruns nothing, yet the executed copy and the
    # book show it.
    source = project / "notebooks" / "05_plots.ipynb"
    nb = nbformat.read(source, as_version=4)
    prose = next(c for c in nb.cells if c.cell_type == "markdown")
    prose.source += "\n\nA sentence added after the run."
    nbformat.write(nb, source)
    assert [v["status"] for v in run.run("tiny", log=logs.append).values()] == \
        ["skipped"] * STAGE_COUNT
    publishing.publish("tiny", log=logs.append)
    for copy in (data / "executed" / "05_plots.ipynb", book / "05_plots.ipynb"):
        assert "A sentence added after the run." in copy.read_text()
        assert nbformat.read(copy, as_version=4).cells[-1].outputs is not None
    assert [v["status"] for v in run.run("tiny", log=logs.append).values()] == \
        ["skipped"] * STAGE_COUNT
    # --force reruns a stage that is up to date (here the data stage alone: --until).
    forced = run.run("tiny", force=True, log=logs.append, until="01_data")
    assert list(forced) == ["01_data"] and forced["01_data"]["status"] == "ran"
    # Same seed, same bytes: the forced rerun reproduces every data file.
    assert (data / "dataset" / "MANIFEST.txt").read_text() == manifest

    # A changed MLP parameter reruns the MLP and the stages that read its checkpoint (their
    # inputs changed), not the Mamba-3's training.
    write_profile(project, "tiny", TINY, {**TINY_MLP, "lr": 0.001})
    with pytest.raises(ValueError, match="stage 02_train_mlp: its notebook, parameters"):
        publishing.publish("tiny", log=logs.append)  # outdated: the book keeps what it had
    assert publishing.check_book() == "tiny" and (book / "MANIFEST.txt").read_text() == manifest
    assert [v["status"] for v in run.run("tiny", log=logs.append).values()] == \
        ["skipped", "ran", "skipped", "skipped", "ran", "ran", "ran", "ran"]
    # A data-stage parameter that does not change the data (the figures' sample size) reruns
    # that stage only: its files are the same bytes, so no stage reading them reruns.
    write_profile(project, "tiny", {**TINY, "n_plot_rows": 500},
                  {**TINY_MLP, "lr": 0.001})
    assert [v["status"] for v in run.run("tiny", log=logs.append).values()] == \
        ["ran"] + ["skipped"] * (STAGE_COUNT - 1)


@pytest.mark.slow  # runs the 01_data notebook
def test_until_runs_the_stages_up_to_the_one_named(project):
    with pytest.raises(ValueError, match=r"until must be one of \['01_data', "):
        run.run("tiny", log=lambda *_: None, until="02_train")
    assert not (project / "data").exists()  # refused before any work
    summary = run.run("tiny", log=lambda *_: None, until="01_data")
    assert list(summary) == ["01_data"] and summary["01_data"]["status"] == "ran"
    data = project / "data" / "tiny"
    assert (data / "dataset" / "MANIFEST.txt").is_file() and not (data / "models").exists()


def test_missing_parameter_refused(project):
    write_profile(project, "tiny", {k: v for k, v in TINY.items() if k != "seed"})
    with pytest.raises(ValueError, match=r"missing parameter\(s\) \['seed'\]"):
        run.run("tiny", log=lambda *_: None)
    assert not (project / "data").exists()


def test_profile_without_a_stage_section_refused(project):
    (project / "params" / "tiny.yaml").write_text(yaml.safe_dump({"01_data": TINY}))
    with pytest.raises(ValueError, match="no section for stage '02_train_mlp'"):
        run.run("tiny", log=lambda *_: None)
    assert not (project / "data").exists()


def test_unknown_profile_refused_by_the_cli(project):
    result = subprocess.run([sys.executable, "-m", "coverage_lib", "run", "--profile", "nope"],
                            capture_output=True, text=True, cwd=project)
    assert result.returncode == 2
    assert "profile must be one of ['tiny']; got 'nope'" in result.stderr
    assert not (project / "data").exists()


@pytest.mark.slow  # runs a notebook kernel
def test_failing_notebook_names_the_notebook_and_cell(project):
    path = project / "notebooks" / "01_data.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')"))
    nbformat.write(nb, path)
    with pytest.raises(execution.PipelineError) as err:
        run.run("tiny", log=lambda *_: None)
    message = str(err.value)
    assert "notebooks/01_data.ipynb" in message and "cell" in message
    assert "RuntimeError: deliberate failure" in message
    assert not (project / "data" / "tiny" / "stamps" / "01_data.json").exists()


def test_params_rules_cover_every_notebook_parameter():
    from papermill import inspect_notebook

    for stage in definitions.stages():
        declared = set(inspect_notebook(str(REPO / stage.notebook)))
        assert declared == set(stage.rules) | set(validation.COMMON), stage.name


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_shipped_profiles_are_complete_and_valid(profile, monkeypatch):
    monkeypatch.delenv("COVERAGE_PROJECT_ROOT", raising=False)
    all_params = definitions.stage_params(profile)
    assert set(all_params) == {s.name for s in definitions.stages()}
    assert json.dumps(all_params)  # plain data, as the stamps store it


def test_a_stage_hashes_the_library_modules_it_imports_and_no_other():
    files = {str(p.relative_to(REPO)) for p in stamps.library_files(
        "import numpy\nfrom coverage_lib.training import trainer\n")}
    # the trainer imports core's metrics, the models package imports its modules, and the
    # packages on the way are imported too; no layer above training is
    assert {"coverage_lib/training/trainer.py", "coverage_lib/training/__init__.py",
            "coverage_lib/core/metrics.py", "coverage_lib/physics/propagation.py",
            "coverage_lib/models/base.py", "coverage_lib/models/__init__.py",
            "coverage_lib/__init__.py"} <= files
    assert not [f for f in files if f.startswith(("coverage_lib/evaluation/",
                                                  "coverage_lib/report/",
                                                  "coverage_lib/pipeline/"))], files
    nested = {str(p.relative_to(REPO)) for p in stamps.library_files(
        "def f():\n    from coverage_lib.evaluation.selector import Selector\n")}
    assert "coverage_lib/evaluation/selector.py" in nested and \
        "coverage_lib/physics/rules.py" in nested


def test_library_hash_ignores_docstrings_and_comments_but_not_code(tmp_path, monkeypatch):
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(tmp_path))
    module = tmp_path / "m.py"

    def digest(text):
        module.write_text(text)
        return stamps._code_digest([module])

    base = digest('"""Doc."""\ndef f(x):\n    """Old words."""\n    return x + 1\n')
    assert digest('"""Other doc."""\n# a comment\ndef f(x):\n    """New words."""\n\n'
                  '    return x + 1  # same\n') == base
    assert digest('"""Doc."""\ndef f(x):\n    """Old words."""\n    return x + 2\n') != base


def test_the_book_refuses_an_unfinished_run_and_a_mix_of_profiles(project):
    with pytest.raises(ValueError, match="no profile has finished a run yet"):
        publishing.publish(log=lambda *_: None)
    with pytest.raises(ValueError, match="stage 01_data: no record of a successful run"):
        publishing.publish("tiny", log=lambda *_: None)
    with pytest.raises(ValueError, match="holds no published run"):
        publishing.check_book()
    book = project / "book" / "executed"
    book.mkdir(parents=True)
    (book / "PROFILE.txt").write_text("paper\n")
    for stage in definitions.stages():  # notebooks executed for two profiles
        nb = nbformat.v4.new_notebook()
        profile = "quick" if stage.name == "04_evaluate" else "paper"
        cell = nbformat.v4.new_code_cell(f'profile = "{profile}"\ndata_dir = "data/{profile}"')
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.append(cell)
        nbformat.write(nb, book / f"{stage.name}.ipynb")
    with pytest.raises(ValueError, match="refusing to build a book from a mix of profiles: "
                                         "book/executed/04_evaluate.ipynb was executed for "
                                         "profile 'quick'"):
        publishing.check_book()
    result = subprocess.run([sys.executable, "-m", "coverage_lib", "book", "--check"],
                            capture_output=True, text=True, cwd=project)
    assert result.returncode == 2 and "mix of profiles" in result.stderr
