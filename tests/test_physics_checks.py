"""Physics-rule checks: the true physics passes every rule; a predictor broken in one way
fails exactly that rule."""
import pytest
from broken_rules import break_rule

from coverage_lib.core import schema
from coverage_lib.datasets import dataset
from coverage_lib.physics import propagation, rules


@pytest.fixture(scope="module")
def features():
    return dataset.generate(3000, seed=21)[schema.FEATURES]


def test_true_physics_passes_every_rule(features):
    table = rules.check(rules.link_budget_predictor, features)
    assert set(table.index) == set(rules.TOLERANCES)
    assert (table["violation_rate"] == 0).all(), table


def broken(rule):
    """The link budget with one rule broken."""
    return lambda f: break_rule(rule, f, propagation.link_budget(f).copy())


@pytest.mark.parametrize("rule", list(rules.TOLERANCES))
def test_a_broken_predictor_fails_its_rule(features, rule):
    table = rules.check(broken(rule), features)
    assert table.loc[rule, "violation_rate"] > 0.2, table
    assert table.loc[rule, "max_violation"] > table.loc[rule, "tolerance"]


def test_violation_rates_table_has_a_column_per_set_and_predictor(features):
    table = rules.violation_rates(
        {"physics": rules.link_budget_predictor, "broken": broken("sinr_identity")},
        {"a": features.head(200), "b": features.tail(200)})
    assert list(table.columns) == [("a", "physics"), ("a", "broken"), ("b", "physics"),
                                   ("b", "broken")]
    assert (table[("a", "physics")] == 0).all()
    assert table.loc["sinr_identity", ("b", "broken")] == 100.0
