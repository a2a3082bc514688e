"""The book's tables and sentences: numbers formatted with units, verdicts in words, and
comparisons worded from the numbers, never typed."""
import numpy as np
import pandas as pd

from coverage_lib.models import registry
from coverage_lib.report import tables, verdicts
from coverage_lib.core.schema import TARGETS
from coverage_lib.physics.rules import TOLERANCES


def test_numbers_integers_and_missing_values():
    assert tables.number(1234.5678, 2) == "1,234.57"
    assert tables.number(20) == "20"
    assert tables.number(np.int64(112433)) == "112,433"
    assert tables.number(float("nan")) == "–" and tables.number(None) == "–"
    assert tables.number(True) == "yes"


def test_target_tables_carry_units_and_their_decimals():
    table = pd.DataFrame({"A": [4.4781, 4.4782, 22.94, 0.83861, 0.04541]},
                         index=pd.Index(TARGETS, name="mae"))
    shown = tables.by_target(table)
    assert list(shown.index) == ["received power [dB]", "SINR [dB]", "coverage radius [m]",
                                 "coverage area [km²]", "QoS score [QoS units]"]
    assert list(shown["A"]) == ["4.478", "4.478", "22.9", "0.8386", "0.0454"]
    blocks = tables.by_target(pd.concat({"ood_rain": table, "test": table}))
    assert blocks.index[0] == ("ood_rain", "received power [dB]")


def test_whole_number_columns_print_as_integers():
    lightgbm = pd.DataFrame({"sinr_db": {"num_leaves": 63, "learning_rate": 0.1, "trees": 438},
                             "qos_score": {"num_leaves": 255, "learning_rate": 0.05,
                                           "trees": 354}}).T  # ints become floats here
    shown = tables.formatted(lightgbm)
    assert list(shown["num_leaves"]) == ["63", "255"]
    assert list(shown["trees"]) == ["438", "354"]
    assert list(shown["learning_rate"]) == ["0.1000", "0.0500"]


def test_goals_read_as_words():
    goals = pd.DataFrame([{"goal": "a", "value": 1.00161, "limit": 1.01, "kind": "max",
                           "met": True},
                          {"goal": "b", "value": 0.99, "limit": 0.999, "kind": "min",
                           "met": False}])
    shown = tables.goals(goals, 4)
    assert shown.loc["a"].tolist() == ["1.0016", "≤\u00a01.01", "met"]
    assert shown.loc["b"].tolist() == ["0.9900", "≥\u00a00.999", "not met"]


def test_violations_in_rule_order_with_units_and_row_counts():
    rates = pd.DataFrame({"MLP": {r: 1.0 for r in sorted(TOLERANCES)}})
    shown = tables.violations(rates, 10000, 112433)
    assert list(shown.index) == list(TOLERANCES)  # the rules' order, not alphabetical
    assert shown.columns[1] == ("rows breaking the rule [%], on 10,000 of 112,433 rows", "MLP")
    assert shown.iloc[0, 0] == "0.01 dB"


def _goal(goal, met, value=1.5, limit=1.0):
    return {"goal": goal, "value": value, "limit": limit, "kind": "max", "met": met}


def test_the_verdict_follows_the_goals():
    goals = [_goal("MLP x", True), _goal("backup y", True), _goal("Selector z", True)]
    assert verdicts.claim_verdict(goals).count("**met**") == 3
    goals[1] = _goal("backup y", False, value=2.0)
    text = verdicts.claim_verdict(goals)
    assert text.count("**met**") == 2 and "**not met**" in text
    assert "backup y: 2 (goal ≤ 1)" in text and "2 of the 3 goals are met" in text


def test_comparisons_are_worded_from_the_numbers():
    assert verdicts.comparison("A", 134.6, "B", 410.8) == "A is better than B"
    assert verdicts.comparison("A", 410.8, "B", 134.6) == "A is worse than B"
    assert verdicts.comparison("A", 1.0, "B", 1.01) == "A is as accurate as B"
    mlp, backup = registry.by_role("primary").key, registry.by_role("backup").key
    entry = lambda p, r: {"received_power_dbm": {"mae": 5.0, "mae_vs_median": p},  # noqa: E731
                          "coverage_radius_m": {"mae": r}}
    accuracy = {"ood_distance": {mlp: entry(0.35, 410.8), backup: entry(0.23, 134.6)}}
    text = verdicts.out_of_distribution(accuracy)
    assert "the backup is better than the MLP (0.230 dB against 0.350 dB)" in text
    assert "the backup is better than the MLP (134.6 m against 410.8 m)" in text
    # over seeds: worded from the interval of the per-seed ratio, errors as mean ± half-width
    again = {"ood_distance": {mlp: entry(0.37, 400.8), backup: entry(0.25, 420.0)}}
    seeds = {"level": 0.95, "per_seed": {"0": {"accuracy": accuracy}, "1": {"accuracy": again}}}
    text = verdicts.out_of_distribution(accuracy, seeds)
    half = 12.706204736174694 * 0.01  # t(0.975, 1)·s/√2 with s = 0.02/√2: 12.706 × 0.01
    assert (f"on received power against the median the backup is better than the MLP "
            f"(0.240 ± {half:.3f} dB against 0.360 ± {half:.3f} dB)") in text
    assert "on coverage radius the backup and the MLP cannot be told apart" in text
    assert "Over 2 seeds" in text


def test_equal_footing_is_judged_from_the_times():
    run = lambda t, improving: {"parameters": 1000, "epochs": 5,  # noqa: E731
                                "training_time_s": t, "still_improving": improving}
    keys = list(registry.BACKBONES)
    equal = verdicts.training_footing({keys[0]: run(600, False), keys[1]: run(640, False)})
    assert "**at equal training wall time**" in equal and "Every backbone converged" in equal
    unequal = verdicts.training_footing({keys[0]: run(100, True), keys[1]: run(640, False)})
    assert "**not** at equal wall time" in unequal and "not at convergence" in unequal
    assert f"Not converged (stopped at the epoch ceiling): {registry.get(keys[0]).name};" in unequal
    # the trainer's record decides where there is one: a ceiling reached past the best epoch
    ceiling = {**run(600, False), "stopped": "ceiling", "converged": False}
    assert "not at convergence" in verdicts.training_footing({keys[0]: ceiling,
                                                              keys[1]: run(640, False)})


def test_prose_tables_as_markdown():
    text = tables.markdown(tables.tolerances({"power_vs_rain": 0.5}), ("rule", "what it says"))
    lines = text.splitlines()
    assert lines[0] == "| rule | what it says | tolerance |"
    assert lines[2].startswith("| power_vs_rain | received power does not rise")
    assert lines[2].endswith("| 0.5 dB |")


def test_plus_minus_joins_means_and_half_widths():
    mean = pd.DataFrame({"a": ["1.250", "12.00 %", "–"], "b": ["3", "4.0", "5.0"],
                         "c": ["0.5 dB", "1,234.5", "x"]})
    half = pd.DataFrame({"a": ["0.010", "0.50 %", "0.1"], "b": ["–", "0.2", "– %"],
                         "c": ["0.5 dB", "12.0", "x"]})
    assert tables.plus_minus(mean, half).to_dict("list") == {
        "a": ["1.250 ± 0.010", "12.00 ± 0.50 %", "–"], "b": ["3", "4.0 ± 0.2", "5.0"],
        "c": ["0.5 dB", "1,234.5 ± 12.0", "x"]}
    import pytest
    with pytest.raises(ValueError, match="same rows and columns"):
        tables.plus_minus(mean, half.iloc[:2])


def test_the_claim_table_leads_with_what_decides_each_part():
    goals = [_goal("MLP received power test MAE vs the median (dB)", True, value=0.25),
             _goal("MLP test MAE / LightGBM test MAE: received_power_dbm", True, value=0.99),
             _goal("MLP test MAE / LightGBM test MAE: coverage_radius_m", True, value=0.15),
             _goal("backup radius MAE on ood_rain (m)", False, value=33.7, limit=25.0),
             _goal("backup / MLP radius MAE on ood_multiple ≤ 40 GHz", True, value=0.127,
                   limit=0.5),
             {**_goal("Selector test MAE / backup test MAE: coverage_radius_m", None,
                      value=0.9978, limit=1.01), "half_width": 0.0301}]
    text = verdicts.claim_table(goals, {"mean": 0.486, "half_width": 0.085})
    lines = text.splitlines()
    assert lines[0] == "| claim | verdict | deciding figures |" and len(lines) == 2 + 3
    mlp, backup, selector = lines[2:]
    assert "**met**: 3 of 3 goals hold" in mlp
    # of the per-target goals, the one nearest its limit, its target in words
    assert "MLP test MAE / LightGBM test MAE, received power: 0.990 (goal ≤\u00a01)" in mlp
    assert "coverage radius" not in mlp
    # a missed goal comes first, then the goals the part is read by
    assert "**not met**: 1 of 2 goals hold" in backup
    figures = backup.split(" | ")[2].split("<br>")
    assert figures[0] == "missed: backup radius MAE on ood_rain (m): 33.70 (goal ≤\u00a025)"
    assert figures[1].startswith("backup / MLP radius MAE on ood_multiple ≤ 40 GHz: 0.127")
    # an undecided goal shown with its interval, to the decimals that tell it from its limit
    assert "**undecided**: 0 of 1 goals hold" in selector
    assert "undecided: Selector test MAE / backup test MAE, coverage radius: 0.9978 ± 0.0301 " \
           "(goal ≤\u00a01.01)" in selector
    assert "test links sent to the backup: 48.6 ± 8.5\u00a0%" in selector
    assert verdicts.CLAIM_ROWS.keys() == {prefixes[0] for _, prefixes in verdicts.CLAIMS}
    assert "did not converge" not in text  # no training given: nothing said of it


def test_a_claim_on_a_backbone_that_did_not_converge_says_so():
    goals = [_goal("MLP received power test MAE vs the median (dB)", True, value=0.25),
             _goal("backup radius MAE on ood_rain (m)", True, value=20.0, limit=25.0),
             _goal("Selector test MAE / backup test MAE: coverage_radius_m", True, value=0.99,
                   limit=1.01)]
    primary, backup = (registry.by_role(r) for r in ("primary", "backup"))
    training = {primary.key: {"still_improving": False, "stopped": "patience",
                              "converged": True},
                backup.key: {"still_improving": True, "stopped": "ceiling", "converged": False}}
    mlp, backup_row, selector = verdicts.claim_table(goals, None, training).splitlines()[2:]
    assert "did not converge" not in mlp
    said = f", on a model that did not converge ({backup.name})"
    assert said in backup_row and said in selector


def test_model_comparisons_turn_to_a_row_per_model():
    from coverage_lib.report import seed_tables

    flat = pd.DataFrame({"A": ["1", "2"], "B": ["3", "4"]}, index=["power", "radius"])
    turned = seed_tables.models_as_rows(flat)
    assert list(turned.index) == ["A", "B"] and list(turned.columns) == ["power", "radius"]
    assert turned.loc["B", "power"] == "3"
    # blocks of rows (a split, a band with its rows) keep their order; a model with no value
    # in a block is left out of it
    blocks = pd.DataFrame({"A": ["1", "2", "5", "6"], "B": ["3", "4", "–", "–"]},
                          index=pd.MultiIndex.from_tuples([
                              ("test", 10, "power"), ("test", 10, "radius"),
                              ("ood", 7, "power"), ("ood", 7, "radius")]))
    turned = seed_tables.models_as_rows(blocks)
    assert list(turned.index) == [("test", 10, "A"), ("test", 10, "B"), ("ood", 7, "A")]
    assert list(turned.columns) == ["power", "radius"]
    assert turned.loc[("ood", 7, "A"), "radius"] == "6"
    assert turned.index.names == [None] * 3
