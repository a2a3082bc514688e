"""The live explorer's export (coverage_lib.report.explorer): the weights as the page reads them,
the confidence gate's trees as flat arrays scoring as LightGBM does, and what it refuses. The
page's forward pass itself is compared with ``predict`` in a real browser
(tests/browser/test_book_browser.py)."""
import json

import numpy as np
import pytest
from conftest import scratch_copy

from coverage_lib.core.schema import FEATURES
from coverage_lib.datasets import dataset
from coverage_lib.evaluation.selector import Selector
from coverage_lib.report import explorer


@pytest.fixture()
def run_dir(finished_tiny, tmp_path, monkeypatch):
    return scratch_copy(finished_tiny, tmp_path, monkeypatch) / "data" / "tiny"


def tensor(weights: np.ndarray, ref: dict) -> np.ndarray:
    offset, *shape = ref["t"]
    return weights[offset: offset + int(np.prod(shape))].reshape(shape)


def test_assets_hold_every_weight_where_model_json_says(run_dir, tmp_path):
    sizes = explorer.write_assets(run_dir, tmp_path / "explorer", {"profile": "tiny"})
    assert set(sizes) == set(explorer.ASSET_FILES)
    payload = json.loads((tmp_path / "explorer" / "model.json").read_text())
    weights = np.fromfile(tmp_path / "explorer" / "weights.bin", dtype="<f4")
    assert payload["format"] == explorer.EXPLORER_FORMAT and payload["profile"] == "tiny"
    assert len(weights) == payload["weights"]["count"]
    selector = explorer.load_selector(run_dir)
    assert payload["checkpoints"] == selector.fingerprint
    assert [f["name"] for f in payload["features"]] == FEATURES
    mlp, mamba = payload["models"]["mlp"], payload["models"]["mamba3"]
    linears = [m for m in selector.primary.net if hasattr(m, "weight") and m.weight.dim() == 2]
    got = [layer for layer in mlp["layers"] if layer["type"] == "linear"]
    assert len(got) == len(linears)
    for layer, module in zip(got, linears):
        np.testing.assert_array_equal(tensor(weights, layer["weight"]),
                                      module.weight.detach().numpy())
        np.testing.assert_array_equal(tensor(weights, layer["bias"]), module.bias.detach().numpy())
    mixer = selector.backup.path.layers[0].forward_scan
    exported = mamba["path"]["layers"][0]["forward"]
    np.testing.assert_array_equal(tensor(weights, exported["in_proj"]),
                                  mixer.in_proj.weight.detach().numpy())
    np.testing.assert_array_equal(tensor(weights, exported["B_bias"]),
                                  mixer.B_bias.detach().numpy().reshape(mixer.nheads, -1))
    assert exported["split"] == list(mixer.split_sizes)
    # the training domain the page marks is the Selector's out_of_domain gate's
    assert [f["trained"] for f in payload["features"]] == \
        [list(selector.domain[c]) for c in FEATURES]


def test_the_gate_scores_as_lightgbm(run_dir):
    selector = explorer.load_selector(run_dir)
    trees = explorer.flat_trees(selector.gate.booster)
    links = dataset.load_split(run_dir / "dataset", "test", FEATURES)
    x = links.to_numpy(dtype=float)
    answers = selector.primary.predict_array(x)
    design = np.concatenate([x, selector._scaled(answers)], axis=1)
    np.testing.assert_allclose(explorer.tree_scores(trees, design),
                               selector.gate.booster.predict(design), rtol=0, atol=1e-12)


def test_without_thresholds_or_with_moved_rules_it_refuses(run_dir):
    selector = explorer.load_selector(run_dir)
    bare = Selector(selector.primary, selector.backup, selector.dataset_stats)
    with pytest.raises(ValueError, match="thresholds"):
        explorer.bundle(bare)
    moved = Selector(selector.primary, selector.backup, selector.dataset_stats,
                     thresholds=selector.thresholds,
                     rules=("area_identity", "power_vs_distance"))
    with pytest.raises(ValueError, match="power_vs_distance"):
        explorer.bundle(moved)


def test_a_backbone_the_page_cannot_run_is_named(run_dir):
    from coverage_lib.training import checkpoint_io
    from coverage_lib.models import registry

    selector = explorer.load_selector(run_dir)
    law = checkpoint_io.load_checkpoint(registry.BACKBONES["mlp_law"].checkpoint_path(run_dir))
    other = selector.with_primary(law["model"], "mlp_law")
    other._set_thresholds(selector.thresholds)
    with pytest.raises(ValueError, match="'mlp_law' is a CoverageLawMLP"):
        explorer.bundle(other)
