"""Physics-rule checks: the true physics passes every rule; a predictor broken in one way
fails exactly that rule."""
import pytest
from broken_rules import break_rule

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
    return lambda f: break_rule(rule, f, physics.link_budget(f).copy())


@pytest.mark.parametrize("rule", list(physics_checks.TOLERANCES))
def test_a_broken_predictor_fails_its_rule(features, rule):
    table = physics_checks.check(broken(rule), features)
    assert table.loc[rule, "violation_rate"] > 0.2, table
    assert table.loc[rule, "max_violation"] > table.loc[rule, "tolerance"]


def test_violation_rates_table_has_a_column_per_set_and_predictor(features):
    table = physics_checks.violation_rates(
        {"physics": physics_checks.link_budget_predictor, "broken": broken("sinr_identity")},
        {"a": features.head(200), "b": features.tail(200)})
    assert list(table.columns) == [("a", "physics"), ("a", "broken"), ("b", "physics"),
                                   ("b", "broken")]
    assert (table[("a", "physics")] == 0).all()
    assert table.loc["sinr_identity", ("b", "broken")] == 100.0
