"""The Selector as a cascade: each gate on rows built to trigger it, the order of the gates,
the per-row rules against physics_checks, the tolerance and its threshold fitted on validation,
saved and reused, the backup run on the routed rows only, and the frontier measured from the
same routing."""
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
from coverage_lib.evaluation import frontier
from coverage_lib.evaluation.selector import (CASCADE_RULES, EVERY, NEVER, REASONS,
                                              routing_summary, Selector, noise_free_truth,
                                              tolerance_threshold)

ID_RANGES = {"frequency_ghz": (0.5, 50.0), "rain_rate_mmh": (0.0, 60.0),
             "distance_m": (10.0, 5000.0)}


@pytest.fixture(scope="module")
def data():
    df, indices, stats = dataset.build(4000, 51, (0.6, 0.2, 0.2), ID_RANGES)
    parts = {name: df.iloc[idx].reset_index(drop=True) for name, idx in indices.items()}
    return parts, stats


class LinkBudgetModel(CoverageModel):
    """A stand-in backbone: the noise-free link budget (it obeys every physics rule), then
    ``edit(features, predictions)`` to break a rule or shift an output. ``rows`` counts the
    links it was asked about."""

    def __init__(self, stats, edit=None):
        super().__init__(stats)
        self.edit, self.rows = edit, 0

    def _predict_checked(self, x, *args):  # what predict and predict_array both call
        self.rows += len(x)
        features = pd.DataFrame(x, columns=FEATURES)
        out = propagation.link_budget(features)[TARGETS].copy()
        return (self.edit(features, out) if self.edit else out).to_numpy(dtype=float)


def selector_of(data, mlp_edit=None, mamba_edit=None, fit=True, tolerance=0.01, **options):
    """A Selector on two stand-ins, its gate fitted on the validation split unless not ``fit``."""
    parts, stats = data
    normaliser = Normalizer.fit(parts["train"]).to_dict()
    selector = Selector(LinkBudgetModel(normaliser, mlp_edit),
                        LinkBudgetModel(normaliser, mamba_edit), stats, **options)
    if fit:
        selector.fit_thresholds(parts["val"], tolerance)
    return selector


def shift_power(features, out, db=1.0):
    return out.assign(received_power_dbm=out["received_power_dbm"] + db)


def rural_off(db=1.0):
    """The MLP off by ``db`` in power (and consistently in SINR, QoS) in rural links only."""
    return lambda f, out: propagation.consistent_targets(
        f, out["received_power_dbm"] + db * (f["scenario"] == 2).to_numpy(),
        out["coverage_radius_m"])


def in_domain(selector, features):
    return features[selector.out_of_domain(features) == ""]


def test_in_domain_rows_where_the_primary_is_as_good_stay_on_it(data):
    selector = selector_of(data, mamba_edit=shift_power)
    assert selector.thresholds["score_threshold"] is NEVER  # the primary is never worse
    features = in_domain(selector, data[0]["test"][FEATURES])
    assert len(features) > 0.9 * len(data[0]["test"])
    out = selector.predict(features)
    assert (out["routed_to"] == "mlp").all() and (out["reason"] == "").all()
    pd.testing.assert_frame_equal(out[TARGETS], propagation.link_budget(features)[TARGETS])
    assert selector.backup.rows == len(data[0]["val"])  # fitting only: predict never ran it


@pytest.mark.parametrize("column, value", [
    ("frequency_ghz", 70.0),        # above the in-distribution range (0.5–50 GHz)
    ("rain_rate_mmh", 80.0),        # above the in-distribution range (0–60 mm/h)
    ("distance_m", 5.0),            # below the training minimum
    ("tx_power_dbm", 60.0),         # above the training maximum
    ("inr_db", -30.0),              # below the training minimum
])
def test_a_row_outside_the_training_domain_goes_to_the_backup(data, column, value):
    selector = selector_of(data, mamba_edit=shift_power)
    features = in_domain(selector, data[0]["test"][FEATURES]).head(4).copy()
    features.loc[features.index[1], column] = value
    before = selector.primary.rows
    out = selector.predict(features)
    assert out["reason"].tolist() == ["", "out_of_domain", "", ""]
    assert out["routed_to"].tolist() == ["mlp", "mamba3", "mlp", "mlp"]
    assert selector.out_of_domain(features).iloc[1] == column
    assert selector.primary.rows - before == 3  # the row the domain settles skips the primary
    mamba = shift_power(features, propagation.link_budget(features)[TARGETS])
    assert out["received_power_dbm"].iloc[1] == mamba["received_power_dbm"].iloc[1]


def test_the_ood_test_sets_go_to_the_backup(data):
    selector = selector_of(data)
    for name in ("ood_frequency", "ood_rain"):
        out = selector.predict(data[0][name][FEATURES])
        assert len(out) and (out["reason"] == "out_of_domain").all(), name


def broken(rule):
    """An edit that breaks one rule."""
    return lambda f, out: break_rule(rule, f, out)


@pytest.mark.parametrize("rule", CASCADE_RULES)
def test_a_row_whose_primary_answer_breaks_a_rule_goes_to_the_backup(data, rule):
    selector = selector_of(data, mlp_edit=broken(rule), fit=False)
    selector.fit_thresholds(data[0]["val"], tolerance=10.0)  # isolate the rules' gate
    features = in_domain(selector, data[0]["test"][FEATURES]).head(300)
    flags = rules_broken(selector.primary.predict, features, rules=CASCADE_RULES,
                         tolerances=selector.tolerances)
    assert flags[rule].mean() > 0.3, "the edit should break the rule on many rows"
    out = selector.predict(features)
    np.testing.assert_array_equal(out["reason"] == "physics_rule", flags.any(axis=1))
    np.testing.assert_array_equal(out["routed_to"] == "mamba3", flags.any(axis=1))
    good = propagation.link_budget(features)[TARGETS]
    pd.testing.assert_frame_equal(out[TARGETS][flags[rule]], good[flags[rule]])
    _, _, details = selector.route(features)
    assert details.loc[flags[rule], "rules_broken"].str.contains(rule).all()


def test_monotonicity_rules_can_be_added_and_cost_two_moved_copies(data):
    selector = selector_of(data, mlp_edit=broken("power_vs_distance"), fit=False,
                           rules=(*CASCADE_RULES, "power_vs_distance", "power_vs_rain"))
    selector.fit_thresholds(data[0]["val"], tolerance=10.0)
    features = in_domain(selector, data[0]["test"][FEATURES]).head(200)
    flags = rules_broken(selector.primary.predict, features, rules=selector.rules,
                         tolerances=selector.tolerances)
    assert flags["power_vs_distance"].mean() > 0.3
    before = selector.primary.rows
    out = selector.predict(features)
    assert selector.primary.rows - before == 3 * len(features)
    np.testing.assert_array_equal(out["reason"] == "physics_rule", flags.any(axis=1))


@pytest.mark.parametrize("rule", list(rules.TOLERANCES))
def test_per_row_rules_agree_with_physics_checks(data, rule):
    features = data[0]["val"][FEATURES].head(400)
    predict = lambda f: broken(rule)(f, propagation.link_budget(f)[TARGETS].copy())  # noqa: E731
    per_row = rules_broken(predict, features, rules=list(rules.TOLERANCES)).mean()
    table = rules.check(predict, features)
    pd.testing.assert_series_equal(per_row, table["violation_rate"].astype(float),
                                   check_names=False)


def test_the_gate_sends_the_rows_where_the_primary_is_worse(data):
    """The MLP is 1 dB off in rural links, exact elsewhere: with no tolerance the gate, fitted
    on validation, sends the rural test links to the backup, and only them; at the default
    tolerance (0.045 dB of power allowed beyond the backup's) it may leave a few rural links
    to the MLP, no more than the tolerance pays for."""
    selector = selector_of(data, mlp_edit=rural_off(), tolerance=0.0)
    features = in_domain(selector, data[0]["test"][FEATURES])
    rural = (features["scenario"] == 2).to_numpy()
    out = selector.predict(features)
    assert (out["reason"][rural] == "low_confidence").mean() > 0.95
    assert (out["reason"][~rural] == "").mean() > 0.95
    assert (out.loc[out["routed_to"] == "mamba3", "reason"] != "").all()
    default = selector.at_tolerance(0.01).predict(features)
    left = (default["reason"][rural] == "").mean() * rural.mean()  # rural share on the MLP
    assert 0.5 < (default["reason"][rural] == "low_confidence").mean()
    assert left * 1.0 <= 0.01 * selector.thresholds["scales"]["received_power_dbm"] * 1.5


def test_a_larger_tolerance_sends_fewer_rows_and_keeps_its_promise(data):
    parts, _ = data
    selector = selector_of(data, mlp_edit=rural_off(0.5))
    test = parts["test"][(selector.out_of_domain(parts["test"][FEATURES]) == "").to_numpy()]
    truth = noise_free_truth(test, selector.physics_assumptions["implementation_gap_db"])
    backup_error = np.abs(selector.backup.predict(test[FEATURES])[TARGETS].to_numpy() - truth)
    shares = []
    for tolerance in (0.0, 0.01, 0.03, 1.0):
        at = selector.at_tolerance(tolerance)
        out = at.predict(test[FEATURES])
        shares.append((out["routed_to"] == "mamba3").mean())
        excess = np.abs(out[TARGETS].to_numpy() - truth).mean(0) - backup_error.mean(0)
        scales = np.array([at.thresholds["scales"][t] for t in TARGETS])
        # the promise is fitted on validation: on test it holds within sampling noise
        assert (excess <= tolerance * scales + 0.02 * scales).all(), tolerance
    assert shares == sorted(shares, reverse=True) and shares[0] > 0.2 and shares[-1] == 0.0
    refit = selector_of(data, mlp_edit=rural_off(0.5), tolerance=0.03)
    assert refit.thresholds["score_threshold"] == \
        selector.at_tolerance(0.03).thresholds["score_threshold"]


def brute_force_share(forced, score, err_p, err_b, scales, tolerance):
    """The fewest rows (in decreasing score, forced ones always) that keep the promise."""
    free = [i for i in np.argsort(-score, kind="stable") if not forced[i]]
    for k in range(len(free) + 1):
        routed = forced.copy()
        routed[free[:k]] = True
        excess = np.where(routed[:, None], err_b, err_p).mean(0) - err_b.mean(0)
        if (excess <= tolerance * scales * (1 + 1e-12)).all():
            return routed.mean()
    return 1.0


@pytest.mark.parametrize("seed", range(6))
def test_the_threshold_is_the_fewest_rows_that_keep_the_promise(seed):
    rng = np.random.default_rng(seed)
    n = 60
    err_p, err_b = rng.exponential(1.0, (n, 2)), rng.exponential(0.8, (n, 2))
    score, forced = rng.normal(size=n), rng.random(n) < 0.1
    scales = np.array([1.0, 2.0])
    for tolerance in (0.0, 0.02, 0.1, 0.5):
        threshold, share = tolerance_threshold(forced, score, err_p, err_b, scales, tolerance)
        assert share == pytest.approx(brute_force_share(forced, score, err_p, err_b, scales,
                                                        tolerance))
        routed = forced | (np.zeros(n, bool) if threshold is NEVER else score > threshold)
        assert routed.mean() == pytest.approx(share) or threshold == EVERY


@pytest.mark.parametrize("mlp_edit, ood, reason", [
    (broken("area_identity"), True, "out_of_domain"),
    (broken("area_identity"), False, "physics_rule"),
    (rural_off(), True, "out_of_domain"),
    (rural_off(), False, "low_confidence"),
    (None, False, ""),
])
def test_the_first_gate_that_holds_is_reported(data, mlp_edit, ood, reason):
    selector = selector_of(data, mlp_edit=rural_off(), fit=True)
    selector.primary.edit = mlp_edit  # the gate learnt rural_off; the answer may break a rule
    features = in_domain(selector, data[0]["test"][FEATURES])
    rural = 2 if reason else 0  # the gate learnt that rural answers are off
    rows = features[(propagation.link_budget(features)["coverage_area_km2"] > 1e-3).to_numpy()
                    & (features["scenario"] == rural).to_numpy()]
    row = rows.head(1).copy()
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


def split_at_the_median_score(selector, features):
    """Set the fitted gate's threshold at the median score of ``features``: half of them go to
    the backup whatever the tiny backbones' relative accuracy (one epoch of training)."""
    _, _, flags = selector.route(features)
    selector._set_thresholds({**selector.thresholds,
                              "score_threshold": float(flags["confidence_score"].median())})
    return selector.thresholds


def test_thresholds_fitted_on_validation_are_saved_and_reused(data, checkpoints, tmp_path,
                                                              monkeypatch):
    parts, _ = data
    selector = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"],
                                         data_manifest_sha256="abc")
    fitted = selector.fit_thresholds(parts["val"], tolerance=0.01)
    assert fitted["fitted_on"] == "val split" and fitted["tolerance"] == 0.01
    thresholds = split_at_the_median_score(selector, parts["test"][FEATURES])
    path = selector.save_thresholds(tmp_path / "selector_thresholds.json")

    def refit(*args, **kwargs):
        raise AssertionError("thresholds must be reused, not refitted")
    monkeypatch.setattr(Selector, "fit_thresholds", refit)
    reused = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"],
                                       thresholds_path=path)
    assert reused.thresholds["score_threshold"] == thresholds["score_threshold"]
    test = parts["test"][FEATURES]
    out = reused.predict(test)
    pd.testing.assert_frame_equal(out, selector.predict(test), check_exact=True)
    assert 0 < (out["routed_to"] == "mamba3").mean() < 1
    # each row carries the answer of the backbone it was routed to
    for route, model in (("mlp", reused.primary), ("mamba3", reused.backup)):
        rows = out["routed_to"] == route
        pd.testing.assert_frame_equal(out.loc[rows, TARGETS], model.predict(test)[rows])
    summary = routing_summary(out)
    assert summary["rows"].sum() == len(test) and summary["fraction"].sum() == pytest.approx(1)
    assert list(summary.index) == [("mlp", ""), *(("mamba3", r) for r in REASONS)]


def test_the_backup_runs_on_exactly_the_routed_rows(data, checkpoints):
    parts, _ = data
    selector = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"])
    selector.fit_thresholds(parts["val"], tolerance=0.01)
    split_at_the_median_score(selector, parts["test"][FEATURES])
    seen = []
    run = selector.backup.predict_array
    selector.backup.predict_array = lambda x, *a, **k: seen.append(np.array(x)) or run(x, *a, **k)
    x = parts["test"][FEATURES].to_numpy(dtype=float).copy()
    x[:25, FEATURES.index("frequency_ghz")] = 80.0
    y, code = selector.predict_array(x)
    assert 25 <= (code > 0).sum() < len(x)
    assert len(seen) == 1 and len(seen[0]) == (code > 0).sum()
    np.testing.assert_array_equal(seen[0], x[code > 0])


def _rewrite(path, new_path, **changes):
    ckpt = torch.load(path, weights_only=True)
    ckpt.update(changes)
    torch.save(ckpt, new_path)
    return new_path


@pytest.mark.parametrize("case, message", [
    ("other data set", "different data sets"),
    ("no dataset stats", "carries no dataset_stats"),
    ("thresholds for other checkpoints", "refit on validation"),
    ("thresholds for another pair", "fitted for the pair"),
])
def test_mismatched_checkpoints_or_thresholds_refused(data, checkpoints, tmp_path, case, message):
    mlp, mamba, thresholds_path, options = checkpoints["mlp"], checkpoints["mamba"], None, {}
    if case == "other data set":
        mamba = _rewrite(mamba, tmp_path / "mamba.pth", data_manifest_sha256="xyz")
    elif case == "no dataset stats":
        mlp = _rewrite(mlp, tmp_path / "mlp.pth", dataset_stats={})
    else:
        selector = Selector.from_checkpoints(mlp, mamba)
        selector.fit_thresholds(data[0]["val"])
        thresholds_path = selector.save_thresholds(tmp_path / "t.json")
        if case == "thresholds for another pair":
            options = {"keys": ("mlp_law", "mamba3")}
        else:
            mlp = _rewrite(mlp, tmp_path / "mlp.pth", epoch=99)  # another checkpoint file
    with pytest.raises(ValueError, match=message):
        Selector.from_checkpoints(mlp, mamba, thresholds_path=thresholds_path, **options)


def test_predict_without_thresholds_is_refused(data):
    with pytest.raises(ValueError, match="fit_thresholds"):
        selector_of(data, fit=False).predict(data[0]["test"][FEATURES].head(3))


def test_routing_tolerances_can_be_widened_per_rule(data):
    features = in_domain(selector_of(data, fit=False), data[0]["test"][FEATURES])
    features = features[propagation.link_budget(features)["coverage_area_km2"] > 1e-3].head(100)
    strict = selector_of(data, mlp_edit=broken("area_identity"))  # area off by 50 %
    assert (strict.predict(features)["reason"] == "physics_rule").all()
    loose = selector_of(data, mlp_edit=broken("area_identity"), fit=False,
                        tolerances={"area_identity": 0.6})
    loose.fit_thresholds(data[0]["val"], tolerance=10.0)
    # (the gate may still send them: the backup here is exact, so no area error is tolerable)
    assert not (loose.predict(features)["reason"] == "physics_rule").any()


@pytest.mark.parametrize("kwargs, message", [
    (dict(rules=["power_vs_frequency"]), "unknown rule 'power_vs_frequency'"),
    (dict(tolerances={"sinr": 1.0}), "unknown rule 'sinr'"),
    (dict(keys=("mlp", "mlp")), "two different registered backbones"),
    (dict(keys=("mlp", "transformer")), "two different registered backbones"),
    (dict(thresholds={"tolerance": -1.0}), "selector_tolerance must be a finite number ≥ 0"),
    (dict(thresholds={"tolerance": 0.01, "score_threshold": "high"}), "'score_threshold'"),
    (dict(dataset_stats={"features": {}}), "feature_stats.json"),
])
def test_bad_selector_arguments_refused(data, kwargs, message):
    parts, stats = data
    normaliser = Normalizer.fit(parts["train"]).to_dict()
    arguments = dict(primary=LinkBudgetModel(normaliser), backup=LinkBudgetModel(normaliser),
                     dataset_stats=stats) | kwargs
    with pytest.raises(ValueError, match=message):
        Selector(**arguments)


@pytest.mark.parametrize("tolerance", [-0.1, float("nan"), float("inf"), True, "0.01"])
def test_a_bad_tolerance_is_refused_before_any_work(data, tolerance):
    selector = selector_of(data, fit=False)
    with pytest.raises(ValueError, match=r"selector_tolerance must be a finite number ≥ 0"):
        selector.fit_thresholds(data[0]["val"], tolerance)
    assert selector.primary.rows == 0 and selector.thresholds is None


def test_predict_answers_as_route_does_with_every_reason_in_one_batch(data, checkpoints):
    """``predict`` runs the backup on the routed rows only; ``route`` runs both on every row.
    On one batch holding every reason, both give the same answers and reasons, and
    ``predict_array`` the same arrays with REASONS' codes."""
    parts, _ = data
    selector = Selector.from_checkpoints(checkpoints["mlp"], checkpoints["mamba"],
                                         tolerances={"area_identity": 0.02})
    selector.fit_thresholds(parts["val"], tolerance=0.01)
    features = parts["test"][FEATURES].head(600).copy()
    split_at_the_median_score(selector, features)
    features.loc[features.index[:40], "frequency_ghz"] = 80.0     # out of the training domain
    out = selector.predict(features)
    routed = selector.combine(*selector.route(features))
    # the cascade runs the primary on the in-domain rows only, ``route`` on all: a GEMM over
    # another batch may differ in the last bits of float32, and the radius, an exponential of
    # the predicted path loss, carries them ~ln(10)·log10(r) times over (once 1.1e-6 apart)
    pd.testing.assert_frame_equal(out, routed[out.columns], check_exact=False, rtol=1e-5)
    assert {"", "out_of_domain", "low_confidence"} <= set(out["reason"])
    y, code = selector.predict_array(features.to_numpy(dtype=float))
    np.testing.assert_array_equal(y, out[TARGETS].to_numpy())
    labels = np.array(["", *REASONS])
    np.testing.assert_array_equal(labels[code], out["reason"].to_numpy(dtype=str))


def test_the_frontier_measures_the_cascade_predict_runs(data):
    parts, _ = data
    selector = selector_of(data, mlp_edit=rural_off(0.5))
    gap = selector.physics_assumptions["implementation_gap_db"]
    frames = {"test": parts["test"], "ood_rain": parts["ood_rain"]}
    backbones = {"mlp": selector.primary,
                 "mlp_law": LinkBudgetModel(selector.primary.normalizer.to_dict())}
    out = frontier.frontier(selector, backbones, parts["val"], frames, gap, repeats=1)
    points = out["pairs"]["mlp"]["points"]
    assert len(points) == len(frontier.FRONTIER_TOLERANCES) + 2
    assert [p["kind"] for p in (points[0], points[-1])] == ["primary_only", "backup_only"]
    assert sum(p["default"] for p in points) == 1
    assert points[0]["splits"]["test"]["to_backup"] == 0
    assert points[-1]["splits"]["test"]["to_backup"] == 1
    truth = noise_free_truth(parts["test"], gap)
    for point in points[1:-1]:
        answer = selector.at_tolerance(point["tolerance"]).predict(parts["test"][FEATURES])
        measured = point["splits"]["test"]
        assert measured["to_backup"] == pytest.approx((answer["routed_to"] == "mamba3").mean())
        assert measured["received_power_dbm"] == pytest.approx(
            np.abs(answer["received_power_dbm"].to_numpy() - truth[:, 0]).mean())
        assert measured["rows_per_s"] > 0
    assert all(p["splits"]["ood_rain"]["to_backup"] == 1 for p in points[1:])
    curve = frontier.risk_coverage(selector, parts["test"], gap)
    for target in frontier.FRONTIER_TARGETS:
        gate, oracle = np.array(curve["gate"][target]), np.array(curve["oracle"][target])
        assert (oracle <= gate + 1e-12).all()
        assert gate[0] == pytest.approx(oracle[0]) and gate[-1] == pytest.approx(oracle[-1])


def test_predict_array_refuses_what_predict_refuses(data):
    selector = selector_of(data)
    x = data[0]["test"][FEATURES].head(5).to_numpy(dtype=float)
    bad = x.copy()
    bad[3, FEATURES.index("rain_rate_mmh")] = -1.0
    with pytest.raises(ValueError, match=r"column 'rain_rate_mmh', row 3: -1.0 .*rain rate ≥ 0"):
        selector.predict_array(bad)
    with pytest.raises(ValueError, match=r"shape \(rows, 13\)"):
        selector.predict_array(x[:, :12])
