"""What the book shows of the Selector as a cascade: its routing by gate, its settings, its
frontier and gates, the numbers and sentences quoted from them, and its figures, all from a
synthetic metrics.json (``selector_results``)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import selector_results  # noqa: E402
from coverage_lib.evaluation import seeds_stage, paper_goals  # noqa: E402
from coverage_lib.evaluation.selector import EVERY, REASONS  # noqa: E402
from coverage_lib.models import registry  # noqa: E402
from coverage_lib.core.schema import TARGETS  # noqa: E402
from coverage_lib.report import page_values, figures, seed_tables, tables, verdicts  # noqa: E402


@pytest.fixture
def results():
    return selector_results.results()


def test_the_routing_table_shows_the_three_gates_in_the_cascades_order(results):
    table = page_values.routing_table(results, percent=True)
    names = registry.display_names()
    assert list(table.index) == [f"to {names['mlp']}", f"to {names['mamba3']}",
                                 *(f"reason: {r}" for r in REASONS)]
    assert REASONS == ("out_of_domain", "physics_rule", "low_confidence")
    assert list(table.columns) == list(selector_results.SPLITS)
    assert table.loc["reason: low_confidence", "test"] == pytest.approx(12.0)
    assert table.loc["reason: out_of_domain", "ood_rain"] == pytest.approx(100.0)


def test_the_routing_table_over_seeds_shows_mean_and_half_width(results):
    other = {**results, "routing": selector_results.routing(to_backup=0.145)}
    spread = seeds_stage.spread({"level": 0.95, "per_seed": {"0": {"routing": results["routing"]},
                                                           "1": {"routing": other["routing"]}}})
    shown = page_values._over_seeds(results, spread)(
        lambda r: tables.percentages(page_values.routing_table(r, True)))
    assert " ± " in shown.loc["reason: low_confidence", "test"]
    assert shown.loc["reason: out_of_domain", "ood_rain"] == "100.00 %"  # the same on both


@pytest.mark.parametrize("threshold, shown", [(0.42, "0.4200"), (None, "none"),
                                              (EVERY, "every in-domain link")])
def test_the_selector_table_gives_rules_then_the_tolerance_and_the_score_threshold(
        results, threshold, shown):
    results = selector_results.results(score_threshold=threshold)
    table = page_values.selector_table(results)
    rows = [i[0] for i in table.index]
    assert rows == [*results["selector"]["rules"], "selector_tolerance", "score threshold",
                    "validation share"]
    assert table.iloc[len(results["selector"]["rules"]), 0] == "0.01"
    assert table.iloc[-2, 0].startswith(shown)
    text = tables.markdown(table, ("rule", "what it says"))
    assert "divergence" not in text and "more_accurate" not in text


def test_the_frontier_table_has_a_row_per_point_and_marks_the_default(results):
    table = page_values.frontier_table(results)
    points = sum(len(p["points"]) for p in results["frontier"]["pairs"].values())
    assert table.shape == (points, 4)  # narrow: the points are the rows
    starred = [i for i in table.index if i[1].endswith("★")]
    assert starred == [(registry.display_names()["mlp"], "tolerance 0.01 ★")]
    first = table.loc[starred[0]]
    assert list(first) == ["46.2 %", "0.254", "25.4", "387,409"]
    assert {i[1] for i in table.index} >= {"primary only", "backup only"}


def test_the_gates_table_gives_each_gates_cost_and_share(results):
    table = page_values.gates_table(results)
    assert list(table.index) == [g["gate"] for g in results["gates"]]
    assert list(table["test rows it routes"]) == ["–", "0.00 %", "0.30 %", "12.00 %", "–"]
    assert table.loc["backup pass", "µs per row"] == "20.00"


def test_the_selector_numbers_compare_the_default_with_the_ends(results):
    numbers = page_values.selector_numbers(results)
    assert numbers["selector_tolerance"] == 0.01
    assert numbers["selector_score_threshold"] == "0.4200"
    assert numbers["frontier_default_to_backup_pct"] == pytest.approx(46.25)
    assert numbers["frontier_backup_power"] == pytest.approx(0.2)
    assert numbers["frontier_primary_radius"] == pytest.approx(30.0)
    assert numbers["frontier_default_radius_over_backup"] == pytest.approx(25.375 / 20)
    speeds = page_values.frontier_speeds(results)
    assert speeds["frontier_default_over_backup_speed"] == pytest.approx(
        speeds["frontier_default_rows_per_s"] / 2e5)


def test_every_quoted_share_is_a_number_of_each_seed(results):
    """``seed_tables.QUOTED`` names numbers ``accuracy_numbers`` gives: the gates' shares
    among them."""
    models = ("oracle", "lightgbm", *registry.BACKBONES, "selector")
    stats = {"mae": 1.0, "mae_vs_median": 0.5, "r2": 0.9}
    accuracy = {"test": {m: {t: dict(stats) for t in TARGETS} for m in models}}
    numbers = page_values.accuracy_numbers(accuracy, results["routing"])
    assert {f"selector_test_{r}" for r in REASONS} <= set(numbers)
    assert set(seed_tables.QUOTED) <= set(numbers)
    assert numbers["selector_test_low_confidence"] == pytest.approx(0.12)


def test_the_speed_sentence_speaks_of_the_cascade(results):
    text = verdicts.selector_speed(results["latency"], results["routing"])
    assert "every row" not in text and "cascade" in text
    assert "12.5 % of the test links" in text
    assert "500,000 rows/s" in text and "0.50 of the MLP network's" in text
    assert "5.0 times the backup's" in text
    assert "0.20 ms where the MLP answers it and 3.00 ms where the backup does" in text
    # without the batch-1 rows of the cascade (an older run), the rest still reads
    assert "ms where" not in verdicts.selector_speed(results["latency"][:3])


def test_the_decisions_say_what_was_decided_and_why(results):
    text = verdicts.decisions(results)
    assert text.count("\n- ") == 2 and text.startswith("- ")
    assert "60 GHz oxygen line" in text and "P.838" in text
    assert "backup by design" in text and "avx512_bf16" in text
    assert "not judged here" in text
    assert "are judged here" in verdicts.decisions({"serving": {"bf16_native": True}})
    assert f"{100 * (paper_goals.SELECTOR_OOD_RATIO - 1):.0f} %" in text


def test_the_selectors_goals_test_the_cascade_claim():
    goals = [paper_goals.goal_row(name, 1.0, 1.01, "max") for name in (
        "Selector test MAE / backup test MAE: sinr_db",
        "Selector / backup, noise-free, on ood_rain (worst target)",
        "backup / MLP radius MAE on ood_multiple ≤ 40 GHz")]
    parts = {claim: [g["goal"] for g in tested]
             for claim, tested, _, _ in verdicts.claim_parts(goals)}
    selector = next(c for c in parts if c.startswith("The Selector"))
    assert "cascade" in selector and len(parts[selector]) == 2
    backup = next(c for c in parts if c.startswith("The physics backup"))
    assert parts[backup] == ["backup / MLP radius MAE on ood_multiple ≤ 40 GHz"]


def _pair_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_the_frontier_draws_a_line_per_pair_on_every_panel_and_stars_the_default(results):
    fig = figures.frontier(results["frontier"])
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == 2 * len(selector_results.SPLITS)
        for ax in axes:
            assert len(_pair_lines(ax)) == len(results["frontier"]["pairs"])
            stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
            assert len(stars) == 1
            assert ax.get_xscale() == "log"
        assert [ax.get_title() for ax in axes[:5]] == list(selector_results.SPLITS)
        # the star sits at the default point's rows/s on the test panel
        star = next(line for line in axes[0].get_lines() if line.get_marker() == "*")
        default = results["frontier"]["pairs"]["mlp"]["points"][7]
        assert default["default"]
        assert star.get_xdata()[0] == default["splits"]["test"]["rows_per_s"]
        assert star.get_ydata()[0] == default["splits"]["test"]["received_power_dbm"]
    finally:
        plt.close(fig)


def test_the_frontier_against_the_share_sent_to_the_backup(results):
    fig = figures.frontier_share(results["frontier"])
    try:
        for ax in fig.axes:
            lines = _pair_lines(ax)
            assert len(lines) == len(results["frontier"]["pairs"])
            assert all(line.get_xdata()[0] == 0.0 and line.get_xdata()[-1] == 1.0
                       for line in lines)  # from the primary alone to the backup alone
            assert sum(line.get_marker() == "*" for line in ax.get_lines()) == 1
    finally:
        plt.close(fig)


def test_the_oracle_curve_is_never_above_the_gates(results):
    rc = results["risk_coverage"]
    fig = figures.risk_coverage(rc)
    try:
        assert len(fig.axes) == 2
        for ax in fig.axes:
            gate, oracle = _pair_lines(ax)
            assert "gate" in gate.get_label() and "oracle" in oracle.get_label()
            np.testing.assert_array_equal(gate.get_xdata(), rc["to_backup"])
            assert np.all(np.asarray(oracle.get_ydata()) <= np.asarray(gate.get_ydata()))
            # both start at the primary alone and end at the backup alone
            assert oracle.get_ydata()[0] == gate.get_ydata()[0]
    finally:
        plt.close(fig)
