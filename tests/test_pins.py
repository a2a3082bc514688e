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
