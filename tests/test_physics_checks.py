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
