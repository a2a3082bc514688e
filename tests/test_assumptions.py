"""The data set's physics assumptions (edge SINR, implementation gap) honoured end to end.

A tiny data set is generated with values other than the library defaults; the models trained
on it, their checkpoints, the served outputs, the physics rule checks (the Selector's routing
among them), the physics loss and the oracle must all use the data's values, not the defaults.
"""
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from coverage_lib.datasets import dataset
from coverage_lib.physics import oracle, propagation, rules
from coverage_lib.core import metrics
from coverage_lib.training import checkpoint_io, train_config, trainer
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer
from coverage_lib.training.physics_loss import PhysicsLoss
from coverage_lib.evaluation.selector import Selector

ASSUMED = {"edge_sinr_db": 2.0, "implementation_gap_db": 6.0}  # defaults: -6 dB and 3 dB
ID_RANGES = {"frequency_ghz": (0.5, 40.0), "rain_rate_mmh": (0.0, 40.0),
             "distance_m": (10.0, 2500.0)}
FAST = train_config.TrainConfig(epochs=1, batch_size=256, lr=3e-3, patience=5, seed=0)
IDENTITIES = ["sinr_identity", "qos_identity", "area_identity", "qos_range", "radius_range"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    df, indices, stats = dataset.build(3000, 17, (0.7, 0.15, 0.15), ID_RANGES, **ASSUMED)
    dataset.write_dataset(folder, df, indices, stats)
    parts = {name: dataset.load_split(folder, name) for name in ("train", "val", "test")}
    return folder, parts


@pytest.fixture(scope="module")
def checkpoints(data, tmp_path_factory):
    """An MLP and a Mamba-3 trained one epoch on the data set, as the notebooks build them."""
    folder, parts = data
    stats = dataset.load_stats(folder)
    assumptions = dataset.physics_assumptions(stats)
    normaliser = Normalizer.fit(parts["train"])
    out = tmp_path_factory.mktemp("models")
    manifest = dataset.manifest_sha256(folder)
    torch.manual_seed(0)
    mlp = CoverageMLP(normaliser.to_dict(), MLPConfig(width=16, depth=2),
                      physics_assumptions=assumptions)
    mamba = CoverageMamba3(normaliser.to_dict(), Mamba3Config(
        d_model=8, d_state=4, n_layers=1, headdim=8, expand=1, bidirectional=False),
        physics_assumptions=assumptions)
    for model, name in ((mlp, "mlp"), (mamba, "mamba")):
        trainer.train(model, parts["train"], parts["val"], FAST, out, name, f"{name}.pth",
                       data_manifest_sha256=manifest, dataset_stats=stats, progress=False,
                       log=lambda *_: None)
    return out / "mlp.pth", out / "mamba.pth"


def test_the_data_set_records_its_assumptions(data):
    folder, parts = data
    assert dataset.load_stats(folder)["physics"] == ASSUMED
    assert dataset.physics_assumptions(dataset.load_stats(folder)) == ASSUMED
    test = parts["test"]
    # The stored targets are the link budget's with these assumptions, not with the defaults.
    budget = rules.link_budget_predictor(test[FEATURES], **ASSUMED)
    np.testing.assert_array_equal(budget["coverage_radius_m"], test["coverage_radius_m"])
    np.testing.assert_array_equal(budget["sinr_db"], test["sinr_median_db"])
    np.testing.assert_allclose(test["qos_score"], propagation.qos_score(test["sinr_db"], 6.0),
                               rtol=0, atol=1e-15)
    default = rules.link_budget_predictor(test[FEATURES])
    assert (default["coverage_radius_m"] != test["coverage_radius_m"]).mean() > 0.5


def test_the_oracle_uses_the_data_sets_gap(data):
    folder, parts = data
    test = parts["test"]
    gap = dataset.physics_assumptions(dataset.load_stats(folder))["implementation_gap_db"]
    floor = oracle.oracle_predictions(test, gap)
    np.testing.assert_array_equal(floor["qos_score"],
                                  propagation.qos_score(test["sinr_median_db"], 6.0))
    # With the library's 3 dB every link below the 256QAM cap would get a higher qos.
    default = oracle.oracle_predictions(test)
    below_cap = floor["qos_score"] < 1.0
    assert below_cap.mean() > 0.3
    assert (default["qos_score"][below_cap] > floor["qos_score"][below_cap]).all()
    with_gap = metrics.score(test, floor).loc["qos_score", "mae"]
    assert oracle.compare_models({}, test, "mae", gap).loc["qos_score", "oracle"] == with_gap
    assert oracle.against_oracle({t: {"mae": 1.0, "rmse": 1.0, "r2": 0.0} for t in TARGETS},
                                  test, gap).loc["qos_score", "oracle MAE"] == with_gap


@pytest.mark.parametrize("which", [0, 1], ids=["mlp", "mamba"])
def test_served_outputs_and_rule_checks_follow_the_checkpoint(data, checkpoints, which):
    _, parts = data
    model = checkpoint_io.load_checkpoint(checkpoints[which])["model"]
    assert model.physics_assumptions == ASSUMED
    features = parts["test"][FEATURES]
    served = model.predict(features)
    np.testing.assert_array_equal(served["qos_score"],
                                  propagation.qos_score(served["sinr_db"].to_numpy(), 6.0))
    # The checks take the model's own gap from its predict...
    rates = rules.check(model.predict, features)["violation_rate"]
    assert (rates[IDENTITIES] == 0).all(), rates[IDENTITIES]
    # ...which is what the data set's gap gives; the library default flags sound rows.
    assert rules.check(model.predict, features, 6.0)["violation_rate"]["qos_identity"] == 0
    default = rules.check(model.predict, features, propagation.IMPLEMENTATION_GAP_DB)
    assert default["violation_rate"]["qos_identity"] > 0


def test_the_link_budget_passes_the_rules_with_the_data_sets_assumptions(data):
    _, parts = data
    features = parts["test"][FEATURES]
    budget = partial(rules.link_budget_predictor, **ASSUMED)
    assert (rules.check(budget, features, 6.0)["violation_rate"] == 0).all()


def test_the_selector_routes_on_the_models_assumptions(data, checkpoints):
    _, parts = data
    selector = Selector.from_checkpoints(*checkpoints)
    selector.fit_thresholds(parts["val"])
    _, _, flags = selector.route(parts["test"][FEATURES])
    assert not flags["rules_broken"].str.contains("qos_identity").any()


def test_the_trainer_refuses_a_model_built_without_the_data_sets_assumptions(data, tmp_path):
    folder, parts = data
    model = CoverageMLP(Normalizer.fit(parts["train"]).to_dict(), MLPConfig(width=8, depth=1))
    assert model.physics_assumptions == propagation.ASSUMPTIONS
    with pytest.raises(ValueError, match="data set was generated with"):
        trainer.train(model, parts["train"], parts["val"], FAST, tmp_path, "mlp", "m.pth",
                       data_manifest_sha256="x", dataset_stats=dataset.load_stats(folder),
                       progress=False, log=lambda *_: None)


class ConstantHeads(torch.nn.Module):
    """Normalised outputs with SINR 5 dB (below the qos cap) and qos = qos(5 dB, gap)."""

    def __init__(self, normaliser, gap, sinr_db=5.0):
        super().__init__()
        s, q = TARGETS.index("sinr_db"), TARGETS.index("qos_score")
        mean, std = normaliser.target_mean, normaliser.target_std
        self.row = torch.zeros(len(TARGETS))
        self.row[s] = float((sinr_db - mean[s]) / std[s])
        self.row[q] = float((propagation.qos_score(sinr_db, gap) - mean[q]) / std[q])
        self.physics_assumptions = propagation.assumptions({"implementation_gap_db": gap})

    def forward(self, x):
        return self.row.expand(len(x), -1)


def test_the_physics_loss_uses_the_models_gap(data):
    _, parts = data
    normaliser = Normalizer.fit(parts["train"])
    hook = PhysicsLoss(normaliser, weight=1.0, n_points=200, batch_size=200, seed=1)
    idx = torch.arange(200)
    assert float(hook.penalties(ConstantHeads(normaliser, 6.0), idx)["qos_identity"]) < 1e-10
    mismatched = ConstantHeads(normaliser, 6.0)
    mismatched.physics_assumptions = propagation.assumptions()  # the defaults
    assert float(hook.penalties(mismatched, idx)["qos_identity"]) > 1e-4


@pytest.mark.parametrize("values, message", [
    ({"edge_sinr_db": float("nan")}, "edge_sinr_db must be a finite number"),
    ({"gap_db": 3.0}, "unknown physics assumption 'gap_db'"),
])
def test_bad_assumptions_refused(values, message):
    with pytest.raises(ValueError, match=message):
        propagation.assumptions(values)


def test_statistics_without_assumptions_refused():
    with pytest.raises(ValueError, match="rerun the data stage"):
        dataset.physics_assumptions({"features": {}, "targets": {}})


def test_defaults_are_recorded_as_the_defaults():
    df = dataset.generate(50, seed=2)
    stats = dataset.feature_stats(df, ID_RANGES)
    assert stats["physics"] == {"edge_sinr_db": -6.0, "implementation_gap_db": 3.0}
    pd.testing.assert_frame_equal(oracle.oracle_predictions(df),
                                  oracle.oracle_predictions(df, 3.0))
