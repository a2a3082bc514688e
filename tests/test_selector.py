"""The Selector: each routing reason on rows built to trigger it, the order of the reasons, the
per-row rules against physics_checks, and thresholds fitted on validation, saved and reused."""
import numpy as np
import pandas as pd
import pytest
import torch
from broken_rules import break_rule

from coverage_lib.datasets import dataset
from coverage_lib.physics import propagation, rules
from coverage_lib.training import train_config, trainer
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.base import CoverageModel
from coverage_lib.models.normalization import Normalizer
from coverage_lib.physics.rules import rules_broken
from coverage_lib.evaluation.selector import ROUTING_RULES, routing_summary, Selector

ID_RANGES = {"frequency_ghz": (0.5, 50.0), "rain_rate_mmh": (0.0, 60.0),
             "distance_m": (10.0, 5000.0)}
HIGH = {"divergence": 10.0}  # a threshold no stand-in pair reaches unless built to


@pytest.fixture(scope="module")
def data():
    df, indices, stats = dataset.build(3000, 51, (0.6, 0.2, 0.2), ID_RANGES)
    parts = {name: df.iloc[idx].reset_index(drop=True) for name, idx in indices.items()}
    return parts, stats


class LinkBudgetModel(CoverageModel):
    """A stand-in backbone: the noise-free link budget (it obeys every physics rule), then
    ``edit(features, predictions)`` to break a rule or shift an output."""

    def __init__(self, stats, edit=None):
        super().__init__(stats)
        self.edit = edit

    def _predict_checked(self, x, *args):  # what predict and predict_array both call
        features = pd.DataFrame(x, columns=FEATURES)
        out = propagation.link_budget(features)[TARGETS].copy()
        return (self.edit(features, out) if self.edit else out).to_numpy(dtype=float)


def selector_of(data, mlp_edit=None, mamba_edit=None, thresholds=HIGH):
    parts, stats = data
    normaliser = Normalizer.fit(parts["train"]).to_dict()
    return Selector(LinkBudgetModel(normaliser, mlp_edit), LinkBudgetModel(normaliser, mamba_edit),
                    stats, thresholds)


def shift_power(features, out, db=1.0):
    return out.assign(received_power_dbm=out["received_power_dbm"] + db)


def in_domain(selector, features):
    return features[selector.out_of_domain(features) == ""]


def test_in_domain_agreeing_rows_stay_on_the_mlp(data):
    selector = selector_of(data, mamba_edit=shift_power)
    features = in_domain(selector, data[0]["test"][FEATURES])
    assert len(features) > 0.9 * len(data[0]["test"])
    out = selector.predict(features)
    assert (out["routed_to"] == "mlp").all() and (out["reason"] == "").all()
    pd.testing.assert_frame_equal(out[TARGETS], propagation.link_budget(features)[TARGETS])


@pytest.mark.parametrize("column, value", [
    ("frequency_ghz", 70.0),        # above the in-distribution range (0.5–50 GHz)
    ("rain_rate_mmh", 80.0),        # above the in-distribution range (0–60 mm/h)
    ("distance_m", 5.0),            # below the training minimum
    ("tx_power_dbm", 60.0),         # above the training maximum
    ("inr_db", -30.0),              # below the training minimum
])
def test_a_row_outside_the_training_domain_goes_to_the_mamba(data, column, value):
    selector = selector_of(data, mamba_edit=shift_power)
    features = in_domain(selector, data[0]["test"][FEATURES]).head(4).copy()
    features.loc[features.index[1], column] = value
    out = selector.predict(features)
    assert out["reason"].tolist() == ["", "out_of_domain", "", ""]
    assert out["routed_to"].tolist() == ["mlp", "mamba3", "mlp", "mlp"]
    assert selector.out_of_domain(features).iloc[1] == column
    mamba = shift_power(features, propagation.link_budget(features)[TARGETS])
    assert out["received_power_dbm"].iloc[1] == mamba["received_power_dbm"].iloc[1]


def test_the_ood_test_sets_go_to_the_mamba(data):
    selector = selector_of(data)
    for name in ("ood_frequency", "ood_rain"):
        out = selector.predict(data[0][name][FEATURES])
        assert len(out) and (out["reason"] == "out_of_domain").all(), name


def broken(rule):
    """An edit that breaks one rule."""
    return lambda f, out: break_rule(rule, f, out)


@pytest.mark.parametrize("rule", ROUTING_RULES)
def test_a_row_whose_mlp_output_breaks_a_rule_goes_to_the_mamba(data, rule):
    selector = selector_of(data, mlp_edit=broken(rule))
    features = in_domain(selector, data[0]["test"][FEATURES]).head(300)
    flags = rules_broken(selector.mlp.predict, features, tolerances=selector.tolerances)
    assert flags[rule].mean() > 0.3, "the edit should break the rule on many rows"
    out = selector.predict(features)
    np.testing.assert_array_equal(out["reason"] == "physics_rule", flags.any(axis=1))
    np.testing.assert_array_equal(out["routed_to"] == "mamba3", flags.any(axis=1))
    good = propagation.link_budget(features)[TARGETS]
    pd.testing.assert_frame_equal(out[TARGETS][flags[rule]], good[flags[rule]])
    _, _, details = selector.route(features)
    assert details.loc[flags[rule], "rules_broken"].str.contains(rule).all()


@pytest.mark.parametrize("rule", list(rules.TOLERANCES))
def test_per_row_rules_agree_with_physics_checks(data, rule):
    features = data[0]["val"][FEATURES].head(400)
    predict = lambda f: broken(rule)(f, propagation.link_budget(f)[TARGETS].copy())  # noqa: E731
    per_row = rules_broken(predict, features, rules=list(rules.TOLERANCES)).mean()
    table = rules.check(predict, features)
    pd.testing.assert_series_equal(per_row, table["violation_rate"].astype(float),
                                   check_names=False)


def test_validation_sends_each_group_to_the_more_accurate_backbone(data):
    """Fitted on validation: a group whose MLP is off by 1 dB (the backup exact) goes to the
    backup with reason more_accurate; groups where the MLP is exact stay on the MLP."""
    rma = lambda f, out: propagation.consistent_targets(  # noqa: E731  (identities kept)
        f, out["received_power_dbm"] + 1.0 * (f["scenario"] == 2).to_numpy(),
        out["coverage_radius_m"])
    selector = selector_of(data, mlp_edit=rma)
    thresholds = selector.fit_thresholds(data[0]["val"])
    assert sorted(thresholds["backup_more_accurate"]) == [[2.0, 0.0], [2.0, 1.0]]
    selector._set_thresholds({**thresholds, **HIGH})  # isolate the fourth reason
    features = in_domain(selector, data[0]["test"][FEATURES])
    out = selector.predict(features)
    rural = (features["scenario"] == 2).to_numpy()
    assert (out["reason"][rural] == "more_accurate").all()
    assert (out["routed_to"][rural] == "mamba3").all() and (out["reason"][~rural] == "").all()


def test_a_row_where_the_backbones_diverge_goes_to_the_mamba(data):
    shift_db = 10.0
    every_other = lambda f, out: out.assign(  # noqa: E731
        received_power_dbm=out["received_power_dbm"] + shift_db * (np.arange(len(f)) % 2 == 0))
    selector = selector_of(data, mamba_edit=every_other, thresholds={"divergence": 0.1})
    features = in_domain(selector, data[0]["test"][FEATURES]).head(50)
    out = selector.predict(features)
    even = np.arange(len(features)) % 2 == 0
    assert (out["reason"][even] == "divergence").all() and (out["reason"][~even] == "").all()
    assert (out["routed_to"][even] == "mamba3").all()
    _, _, flags = selector.route(features)
    expected = shift_db / selector.mlp.normalizer.target_std[0]  # received power's scale
    np.testing.assert_allclose(flags["divergence"][even], expected, rtol=1e-9)


@pytest.mark.parametrize("mlp_rule, ood, diverge, reason", [
    ("area_identity", True, True, "out_of_domain"),
    ("area_identity", False, True, "physics_rule"),
    (None, True, True, "out_of_domain"),
    (None, False, True, "divergence"),
    (None, False, False, ""),
])
def test_the_first_reason_that_holds_is_reported(data, mlp_rule, ood, diverge, reason):
    selector = selector_of(data, mlp_edit=broken(mlp_rule) if mlp_rule else None,
                           mamba_edit=lambda f, out: shift_power(f, out, 10.0 if diverge else 0),
                           thresholds={"divergence": 0.1})
    features = in_domain(selector, data[0]["test"][FEATURES])
    # a row with a non-zero area, so that scaling the area breaks the identity
    row = features[propagation.link_budget(features)["coverage_area_km2"] > 1e-3].head(1).copy()
    if ood:
        row["frequency_ghz"] = 70.0
    assert selector.predict(row)["reason"].tolist() == [reason]


@pytest.fixture(scope="module")
def checkpoints(data, tmp_path_factory):
    """Tiny real backbones, trained one epoch, saved as checkpoints with the data set stats."""
    parts, stats = data
    folder = tmp_path_factory.mktemp("checkpoints")
    normaliser = Normalizer.fit(parts["train"]).to_dict()
    config = train_config.TrainConfig(epochs=1, batch_size=256, seed=0)
    paths = {}
    for name, model in (("mlp", CoverageMLP(normaliser, MLPConfig(width=16, depth=1))),
                        ("mamba", CoverageMamba3(normaliser, Mamba3Config(
                            d_model=16, d_state=8, n_layers=1, headdim=8)))):
        torch.manual_seed(0)
        result = trainer.train(model, parts["train"], parts["val"], config, folder, name,
                                f"best_{name}.pth", data_manifest_sha256="abc",
                                dataset_stats=stats, progress=False, log=lambda *_: None)
        paths[name] = result.checkpoint
    return paths


def test_thresholds_fitted_on_validation_are_saved_and_reused(data, checkpoints, tmp_path,
                                                              monkeypatch):
    parts, _ = data
    selector = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"],
                                         data_manifest_sha256="abc")
    thresholds = selector.fit_thresholds(parts["val"], quantile=0.9)
    _, _, flags = selector.route(parts["val"][FEATURES])
    assert np.mean(flags["divergence"] > thresholds["divergence"]) == pytest.approx(0.1, abs=0.01)
    path = selector.save_thresholds(tmp_path / "selector_thresholds.json")

    def refit(*args, **kwargs):
        raise AssertionError("thresholds must be reused, not refitted")
    monkeypatch.setattr(Selector, "fit_thresholds", refit)
    reused = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"],
                                       thresholds_path=path)
    assert reused.thresholds == thresholds
    test = parts["test"][FEATURES]
    out = reused.predict(test)
    pd.testing.assert_frame_equal(out, selector.predict(test), check_exact=True)
    # each row carries the answer of the backbone it was routed to
    for route, model in (("mlp", reused.mlp), ("mamba3", reused.mamba)):
        rows = out["routed_to"] == route
        pd.testing.assert_frame_equal(out.loc[rows, TARGETS], model.predict(test)[rows])
    summary = routing_summary(out)
    assert summary["rows"].sum() == len(test) and summary["fraction"].sum() == pytest.approx(1)
    assert list(summary.index) == [("mlp", ""), ("mamba3", "out_of_domain"),
                                   ("mamba3", "more_accurate"), ("mamba3", "physics_rule"),
                                   ("mamba3", "divergence")]


def _rewrite(path, new_path, **changes):
    ckpt = torch.load(path, weights_only=True)
    ckpt.update(changes)
    torch.save(ckpt, new_path)
    return new_path


@pytest.mark.parametrize("case, message", [
    ("other data set", "different data sets"),
    ("no dataset stats", "carries no dataset_stats"),
    ("thresholds for other checkpoints", "refit on validation"),
])
def test_mismatched_checkpoints_or_thresholds_refused(data, checkpoints, tmp_path, case, message):
    mlp, mamba, thresholds_path = checkpoints["mlp"], checkpoints["mamba"], None
    if case == "other data set":
        mamba = _rewrite(mamba, tmp_path / "mamba.pth", data_manifest_sha256="xyz")
    elif case == "no dataset stats":
        mlp = _rewrite(mlp, tmp_path / "mlp.pth", dataset_stats={})
    else:
        selector = Selector.from_checkpoints(mlp, mamba)
        selector.fit_thresholds(data[0]["val"])
        thresholds_path = selector.save_thresholds(tmp_path / "t.json")
        mlp = _rewrite(mlp, tmp_path / "mlp.pth", epoch=99)  # another checkpoint file
    with pytest.raises(ValueError, match=message):
        Selector.from_checkpoints(mlp, mamba, thresholds_path=thresholds_path)


def test_predict_without_thresholds_is_refused(data):
    with pytest.raises(ValueError, match="fit_thresholds"):
        selector_of(data, thresholds=None).predict(data[0]["test"][FEATURES].head(3))


def test_routing_tolerances_can_be_widened_per_rule(data):
    features = in_domain(selector_of(data), data[0]["test"][FEATURES])
    features = features[propagation.link_budget(features)["coverage_area_km2"] > 1e-3].head(100)
    strict = selector_of(data, mlp_edit=broken("area_identity"))  # area off by 50 %
    assert (strict.predict(features)["reason"] == "physics_rule").all()
    parts, stats = data
    normaliser = Normalizer.fit(parts["train"]).to_dict()
    loose = Selector(LinkBudgetModel(normaliser, broken("area_identity")),
                     LinkBudgetModel(normaliser), stats, HIGH, tolerances={"area_identity": 0.6})
    assert (loose.predict(features)["routed_to"] == "mlp").all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(rules=["power_vs_frequency"]), "unknown rule 'power_vs_frequency'"),
    (dict(tolerances={"sinr": 1.0}), "unknown rule 'sinr'"),
    (dict(thresholds={"divergence": -1.0}), "'divergence', a number ≥ 0"),
    (dict(dataset_stats={"features": {}}), "feature_stats.json"),
])
def test_bad_selector_arguments_refused(data, kwargs, message):
    parts, stats = data
    normaliser = Normalizer.fit(parts["train"]).to_dict()
    arguments = dict(mlp_model=LinkBudgetModel(normaliser), mamba_model=LinkBudgetModel(normaliser),
                     dataset_stats=stats, thresholds=HIGH) | kwargs
    with pytest.raises(ValueError, match=message):
        Selector(**arguments)


def test_predict_answers_as_route_does_with_every_reason_in_one_batch(data, checkpoints):
    """``predict`` skips the MLP on the rows the cheap tests settle; ``route`` runs every test on
    every row. On one batch holding every reason, both give the same answers and reasons, and
    ``predict_array`` the same arrays with REASONS' codes."""
    parts, _ = data
    selector = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"])
    selector.fit_thresholds(parts["val"], quantile=0.8)          # some rows diverge
    groups = [[0.0, 1.0]]                                         # UMa LOS: the backup's
    selector._set_thresholds({**selector.thresholds, "backup_more_accurate": groups})
    features = parts["test"][FEATURES].head(400).copy()
    features.loc[features.index[:40], "frequency_ghz"] = 80.0     # out of the training domain
    features.loc[features.index[40:200], "scenario"] = 1.0        # UMi: left to the MLP
    features.loc[features.index[200:], "scenario"] = 0.0          # UMa, LOS or NLOS
    features.loc[features.index[40:120], "los"] = 0.0

    out = selector.predict(features)
    routed = Selector.combine(*selector.route(features))
    pd.testing.assert_frame_equal(out, routed[out.columns], check_exact=True)
    assert {"", "out_of_domain", "more_accurate", "divergence"} <= set(out["reason"])
    y, code = selector.predict_array(features.to_numpy(dtype=float))
    np.testing.assert_array_equal(y, out[TARGETS].to_numpy())
    labels = np.array(["", "out_of_domain", "more_accurate", "physics_rule", "divergence"])
    np.testing.assert_array_equal(labels[code], out["reason"].to_numpy(dtype=str))


def test_predict_array_refuses_what_predict_refuses(data):
    selector = selector_of(data)
    x = data[0]["test"][FEATURES].head(5).to_numpy(dtype=float)
    bad = x.copy()
    bad[3, FEATURES.index("rain_rate_mmh")] = -1.0
    with pytest.raises(ValueError, match=r"column 'rain_rate_mmh', row 3: -1.0 .*rain rate ≥ 0"):
        selector.predict_array(bad)
    with pytest.raises(ValueError, match=r"shape \(rows, 13\)"):
        selector.predict_array(x[:, :12])
