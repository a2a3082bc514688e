"""Physics-rule checks: the true physics passes every rule; a predictor broken in one way
fails exactly that rule."""
import numpy as np
import pytest

from coverage_lib import dataset, physics, physics_checks


@pytest.fixture(scope="module")
def features():
    return dataset.generate(3000, seed=21)[dataset.FEATURES]


def test_true_physics_passes_every_rule(features):
    table = physics_checks.check(physics_checks.link_budget_predictor, features)
    assert set(table.index) == set(physics_checks.TOLERANCES)
    assert (table["violation_rate"] == 0).all(), table


def broken(rule):
    """The link budget with one rule broken."""
    def predict(f):
        out = physics.link_budget(f).copy()
        if rule == "power_vs_distance":
            out["received_power_dbm"] += 30 * np.log10(f["distance_m"].to_numpy())
        elif rule == "power_vs_rain":
            out["received_power_dbm"] += 0.5 * f["rain_rate_mmh"].to_numpy()
        elif rule == "radius_vs_distance":
            out["coverage_radius_m"] = 0.5 * f["distance_m"].to_numpy()
        elif rule == "radius_vs_tx_power":
            out["coverage_radius_m"] = 5000.0 - 50 * f["tx_power_dbm"].to_numpy()
        elif rule == "radius_vs_gain":
            out["coverage_radius_m"] = 3000.0 - 50 * f["antenna_gain_dbi"].to_numpy()
        elif rule == "area_identity":
            out["coverage_area_km2"] *= 1.5
        elif rule == "sinr_identity":
            out["sinr_db"] += 3.0
        elif rule == "qos_identity":
            out["qos_score"] = 0.5 * out["qos_score"]
        elif rule == "qos_range":
            out["qos_score"] = out["qos_score"] + 0.5
        elif rule == "radius_range":
            out["coverage_radius_m"] = out["coverage_radius_m"] * 3 + 100
        return out
    return predict


@pytest.mark.parametrize("rule", list(physics_checks.TOLERANCES))
def test_a_broken_predictor_fails_its_rule(features, rule):
    table = physics_checks.check(broken(rule), features)
    assert table.loc[rule, "violation_rate"] > 0.2, table
    assert table.loc[rule, "max_violation"] > table.loc[rule, "tolerance"]
