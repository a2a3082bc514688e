"""Pinned results: a finished run's small outputs under pins/<profile>/ with a MANIFEST. A fresh
clone (no data/) regenerates the data set and trains nothing; a pinned file changed by hand is
refused by name, before any work."""
import json
import shutil

import pytest

from coverage_lib.pipeline import pins, run

from conftest import STAGE_COUNT, scratch_copy


@pytest.fixture()
def pinned(finished_tiny, tmp_path, monkeypatch):
    root = scratch_copy(finished_tiny, tmp_path, monkeypatch)
    pins.pin("tiny", log=lambda *_: None)
    return root


def test_pins_hold_every_stage_but_not_the_data_set(pinned):
    listed = pins.read_manifest("tiny")
    assert {f"stamps/{name}.json" for name in (
        "01_data", "02_train_mlp", "03_train_mamba", "03b_train_mlp_law", "04_evaluate",
        "04b_seeds", "05_plots", "06_interactive")} <= set(listed)
    assert "results/metrics.json" in listed and "models/best_mlp_coverage.pth" in listed
    assert not [f for f in listed if f.startswith("dataset/") or "training_state" in f]
    assert pins.check("tiny") == listed


def test_a_fresh_clone_regenerates_the_data_set_and_trains_nothing(pinned):
    shutil.rmtree(pinned / "data")
    lines = []
    summary = run.run("tiny", log=lines.append)
    assert any(line.startswith("restored ") for line in lines)
    assert summary["01_data"]["status"] == "ran"  # its data set was not pinned
    skipped = [s for s, r in summary.items() if s != "chains" and r["status"] == "skipped"]
    assert len(skipped) == STAGE_COUNT - 1, summary


@pytest.mark.parametrize("what", ["changed", "added"])
def test_a_pinned_file_touched_by_hand_is_refused_by_name(pinned, what):
    folder = pins.pins_dir("tiny")
    if what == "changed":
        path = folder / "results" / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["profile"] = "edited"
        path.write_text(json.dumps(metrics))
        expected = "pins/tiny/results/metrics.json was changed by hand"
    else:
        (folder / "results" / "extra.json").write_text("{}")
        expected = "pins/tiny/results/extra.json is not in MANIFEST.txt"
    before = sorted(p.name for p in (pinned / "data" / "tiny" / "stamps").iterdir())
    with pytest.raises(ValueError, match=expected):
        run.run("tiny", log=lambda *_: None)
    assert sorted(p.name for p in (pinned / "data" / "tiny" / "stamps").iterdir()) == before


def test_pins_over_the_limit_are_refused_naming_the_largest(finished_tiny, tmp_path,
                                                           monkeypatch):
    scratch_copy(finished_tiny, tmp_path, monkeypatch)
    monkeypatch.setattr(pins, "LIMIT_BYTES", 1024)
    with pytest.raises(ValueError, match=r"over the 0 MiB limit; the largest: "):
        pins.pin("tiny", log=lambda *_: None)
    assert not pins.pins_dir("tiny").exists()


def test_full_size_chains_keep_their_checkpoints_learning_curve_chains_do_not():
    from coverage_lib.datasets.replicates import Replicate
    from coverage_lib.pipeline.definitions import chain_stages

    full, curve = Replicate(1).name, Replicate(1, 10_000).name
    for rel in ("models/best_mlp_coverage.pth", "executed/02_train_mlp.ipynb",
                "models/mlp_training_history.json"):
        assert pins.replicate_keeps(full, "02_train_mlp", rel)
    assert not pins.replicate_keeps(curve, "02_train_mlp", "models/best_mlp_coverage.pth")
    assert not pins.replicate_keeps(curve, "02_train_mlp", "executed/02_train_mlp.ipynb")
    assert pins.replicate_keeps(curve, "02_train_mlp", "models/mlp_training_history.json")
    assert pins.replicate_keeps(curve, chain_stages()[-1].name, "results/replicate.json")


def _perturb_last_bits(folder, seed: int = 0) -> int:
    """One ulp up on sampled cells of every float column of every split's Parquet file (as
    another CPU's kernels would leave them), the data set's own MANIFEST and fingerprint
    rewritten as the data stage writes them. Returns how many cells changed."""
    import numpy as np

    from coverage_lib.core import storage
    from coverage_lib.datasets import dataset

    rng, changed, written = np.random.default_rng(seed), 0, {}
    for name in dataset.SPLIT_NAMES:
        path = folder / dataset.FILE_SPLIT_PARQUET.format(name)
        frame = storage.read_parquet(path)
        for column in frame.columns:
            if frame[column].dtype == np.float64 and len(frame):
                rows = rng.choice(len(frame), size=max(1, len(frame) // 10), replace=False)
                values = frame[column].to_numpy().copy()
                values[rows] = np.nextafter(values[rows], np.inf)
                frame[column] = values
                changed += len(rows)
        written.update(storage.frame_files(folder, dataset.ROWS_SPLIT.format(name), frame))
    others = {n: (folder / n).read_bytes() for n in dataset.read_manifest(folder)
              if n not in written and n != dataset.FILE_FINGERPRINT}
    dataset.write_files(folder, others, written=written)
    return changed


def test_a_fresh_clone_under_the_baseline_dispatch_trains_nothing(pinned, monkeypatch):
    """Pinned under the native dispatch; a fresh clone run with --cpu-dispatch baseline
    regenerates the data set, skips every other stage and publishes the book. Where the two dispatches give the
    same bits on this machine, the regenerated data set's last bits are perturbed (one ulp on
    a tenth of the float cells), so the tolerance is exercised either way."""
    from coverage_lib.datasets import dataset
    from coverage_lib.pipeline import execution

    shutil.rmtree(pinned / "data")
    pinned_identity = json.loads((pins.pins_dir("tiny") / "stamps" / "01_data.json")
                                 .read_text())["data_sets"]["dataset"]["identity"]
    exercised = []
    real_run_stage = execution.run_stage

    def run_stage(stage, p, executed, progress_file=None):
        real_run_stage(stage, p, executed, progress_file)
        if stage.name == "01_data":
            folder = pinned / "data" / "tiny" / "dataset"
            if dataset.manifest_sha256(folder) == pinned_identity:
                exercised.append(f"perturbed {_perturb_last_bits(folder)} cells")
            else:
                exercised.append("the baseline dispatch's own bits")

    monkeypatch.setattr(execution, "run_stage", run_stage)
    lines = []
    summary = run.run("tiny", log=lines.append, cpu_dispatch="baseline")
    print("exercised:", exercised)
    assert summary["01_data"]["status"] == "ran"
    assert [s for s, r in summary.items() if s != "chains" and r["status"] == "ran"] == \
        ["01_data"], summary
    stamp = json.loads((pinned / "data" / "tiny" / "stamps" / "01_data.json").read_text())
    assert stamp["cpu_dispatch"] == "baseline"
    assert stamp["data_agreement"]["state"] == "within-tolerance", stamp["data_agreement"]
    assert 0 < stamp["data_agreement"]["max_relative"] < 1e-12
    folder = pinned / "data" / "tiny" / "dataset"
    assert dataset.manifest_sha256(folder) != pinned_identity
    assert dataset.identity(folder) == pinned_identity
    assert any("stands for it" in line for line in lines), lines
    opening = f"{STAGE_COUNT} stages: 1 to run, {STAGE_COUNT - 1} up to date, to be skipped"
    assert any(line.startswith(opening) for line in lines), lines  # the data stage's minute
    # the book: the pinned checkpoints and results are accepted beside the regenerated data
    # (the explorer's export loads them), and the first page says which data set it is
    from coverage_lib.pipeline import publishing

    publishing.publish("tiny", log=lambda *_: None)
    first_page = (pinned / "book" / "executed" / "profile.md").read_text()
    assert "Data set regenerated here: agrees with the pinned one within a relative 1e-09" \
        in first_page, first_page


def test_a_data_set_that_differs_for_real_reruns_every_stage_and_says_where(pinned):
    """Another seed is not the pinned data set: the run names the first statistic that
    differs and by how much, and every stage that reads the data set runs again."""
    import yaml

    path = pinned / "params" / "tiny.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["01_data"]["seed"] = 8
    path.write_text(yaml.safe_dump(profile))
    shutil.rmtree(pinned / "data" / "tiny" / "dataset")
    lines = []
    summary = run.run("tiny", log=lines.append)
    said = [line for line in lines if "differs from the one recorded" in line]
    assert said and "relative difference" in said[0] and "tolerance 1e-09" in said[0], lines
    assert summary["02_train_mlp"]["status"] == "ran"
    assert summary["04_evaluate"]["status"] == "ran"
    stamp = json.loads((pinned / "data" / "tiny" / "stamps" / "01_data.json").read_text())
    assert stamp["data_agreement"]["state"] == "different"
