"""The book's tables as a reader sees them: numbers formatted with their units, verdicts in
words, rows in a meaningful order.

Every function takes a numeric table (``evaluation``'s) and returns a table of strings: the
numbers stay in ``metrics.json``; what the book pastes is rounded here, once. Errors keep the
decimals that separate the models (``ERROR_DECIMALS``), thousands are grouped, integers are
printed as integers, and a missing value is "–".
"""
from __future__ import annotations

import numbers

import pandas as pd

from ..core.schema import TARGETS
from ..physics.rules import RULE_MEANINGS, RULE_UNITS, TOLERANCES

# An error of each target: its unit and the decimals the tables show.
ERROR_UNITS = {"received_power_dbm": "dB", "sinr_db": "dB", "coverage_radius_m": "m",
               "coverage_area_km2": "km²", "qos_score": "QoS units"}
ERROR_DECIMALS = {"received_power_dbm": 3, "sinr_db": 3, "coverage_radius_m": 1,
                  "coverage_area_km2": 4, "qos_score": 4}
NAMES = {"received_power_dbm": "received power", "sinr_db": "SINR",
         "coverage_radius_m": "coverage radius", "coverage_area_km2": "coverage area",
         "qos_score": "QoS score"}


def number(value, decimals: int = 3) -> str:
    """``value`` with ``decimals`` decimals and grouped thousands; an integer without
    decimals; a boolean as yes/no; None/NaN as "–"."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{value:,d}"
    return f"{value:,.{decimals}f}"


def with_half(mean, half, decimals: int = 3) -> str:
    """``number(mean)`` followed by " ± " and the half-width of its interval, where there is
    one (None or NaN: the mean alone)."""
    shown = number(mean, decimals)
    return shown if half is None or half != half else f"{shown} ± {number(half, decimals)}"


def target_label(target: str, unit: str | None = None) -> str:
    """'received power [dB]' for a target's error (or ``unit`` where given)."""
    return f"{NAMES[target]} [{ERROR_UNITS[target] if unit is None else unit}]"


def by_target(table: pd.DataFrame, decimals: dict | int = ERROR_DECIMALS,
              unit: str | None = None) -> pd.DataFrame:
    """A table whose rows (or the last level of its row index) are targets: each row
    formatted with its target's decimals, the targets named with the error's unit (``unit``
    for them all, "" for none)."""
    def target_of(index):
        return index[-1] if isinstance(index, tuple) else index

    rows = {}
    for index, row in table.iterrows():
        target = target_of(index)
        d = decimals if isinstance(decimals, int) else decimals[target]
        label = target_label(target, unit) if unit != "" else NAMES[target]
        key = (*index[:-1], label) if isinstance(index, tuple) else label
        rows[key] = [number(v, d) for v in row]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=table.columns)
    if isinstance(table.index, pd.MultiIndex):
        out.index = pd.MultiIndex.from_tuples(list(rows))
    return unnamed(out)


def unnamed(table: pd.DataFrame) -> pd.DataFrame:
    """Without index and column names: pandas would print each as a header row of its own."""
    table.index.names = [None] * table.index.nlevels
    table.columns.names = [None] * table.columns.nlevels
    return table


GOAL_VERDICTS = {True: "met", False: "not met", None: "undecided"}  # undecided: see seeds_stage.goals


def with_spread(shown: str, spread, decimals: int) -> str:
    """``shown`` followed by a timing goal's spread, "[low – high]", where it has one."""
    if not isinstance(spread, (list, tuple)):
        return shown
    low, high = (number(float(v), decimals) for v in spread)
    return f"{shown} [{low}\u2013{high}]"


def goals(table: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """Goals (``paper_goals.goals`` rows: goal, value, limit, kind, met; over seeds also
    ``half_width``, and ``met`` None where undecided: ``seeds_stage.goals``; a timing goal's
    ``spread`` over its timings' quartiles: ``paper_goals.serving_goals``) as measured value
    (mean ± half-width over seeds, or the value with its spread in brackets), the limit with
    its direction (≤ or ≥) and a verdict in words."""
    halves = table["half_width"] if "half_width" in table else [None] * len(table)
    spreads = table["spread"] if "spread" in table else [None] * len(table)
    return unnamed(pd.DataFrame({
        "measured": [with_spread(with_half(float(v), h, decimals), s, decimals)
                     for v, h, s in zip(table["value"], halves, spreads)],
        "goal": [("≤\u00a0" if k == "max" else "≥\u00a0")  # no break between sign and limit
                 + number(float(limit), decimals).rstrip("0").rstrip(".")
                 for k, limit in zip(table["kind"], table["limit"])],
        "verdict": [GOAL_VERDICTS[None if m is None or m != m else bool(m)]
                    for m in table["met"]],
    }, index=pd.Index(table["goal"])))


def violations(table: pd.DataFrame, rows: int, of_rows: int,
               tolerances: dict = TOLERANCES) -> pd.DataFrame:
    """Violation rates (%; a row per rule, a column per model; or a block of rules per split)
    in the rules' own order, each rule with its tolerance and unit; the header says on how
    many rows (``rows`` of ``of_rows``; for several splits, ``rows`` per split)."""
    def rule_of(index):
        return index[-1] if isinstance(index, tuple) else index

    order = {r: i for i, r in enumerate(tolerances)}
    blocks = list(dict.fromkeys(i[:-1] if isinstance(i, tuple) else () for i in table.index))
    kept = sorted((i for i in table.index if rule_of(i) in order),
                  key=lambda i: (blocks.index(i[:-1] if isinstance(i, tuple) else ()),
                                 order[rule_of(i)]))
    out = table.loc[kept].apply(lambda column: column.map(lambda v: number(v, 2)))
    out.insert(0, "tolerance", [f"{tolerances[rule_of(i)]:g} {RULE_UNITS[rule_of(i)]}"
                                for i in kept])
    header = (f"rows breaking the rule [%], on {rows:,d} of {of_rows:,d} rows"
              if of_rows else "rows breaking the rule [%]")
    out.columns = pd.MultiIndex.from_tuples([("", "tolerance")]
                                            + [(header, c) for c in out.columns[1:]])
    return unnamed(out)


def tolerances(values: dict) -> pd.DataFrame:
    """A rule → tolerance mapping with units and what each rule says."""
    return pd.DataFrame({"tolerance": [f"{v:g} {RULE_UNITS[r]}" for r, v in values.items()]},
                        index=pd.MultiIndex.from_tuples([(r, RULE_MEANINGS[r]) for r in values]))


def percentages(table: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """Every number with ``decimals`` decimals and a % sign."""
    return unnamed(table.apply(lambda column: column.map(lambda v: number(v, decimals) + " %")))


def formatted(table: pd.DataFrame, decimals: dict | None = None,
              default: int = 4) -> pd.DataFrame:
    """Every number with its column's decimals (``decimals[column]``, else ``default``); a
    column whose numbers are all whole (counts: leaves, trees, rows) as whole numbers;
    booleans as yes/no; text as it is."""
    out = table.copy().astype(object)
    for column in table.columns:
        values = list(table[column])
        real = [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)
                and v == v]
        whole = bool(real) and all(float(v).is_integer() for v in real)
        d = 0 if whole else (decimals or {}).get(column, default)
        out[column] = [number(int(v) if whole and v == v and not isinstance(v, bool) else v, d)
                       if isinstance(v, numbers.Real) or v is None else str(v) for v in values]
    return unnamed(out)


def plus_minus(mean: pd.DataFrame, half: pd.DataFrame) -> pd.DataFrame:
    """Two formatted tables of the same shape, the means and the half-widths of their
    intervals, as one: each cell "mean ± half-width" ("12.00 ± 0.50 %" for percentages),
    the mean alone where the half-width is missing ("–") or is not a number (a column of
    text, e.g. tolerances, the same in both)."""
    def is_number(text: str) -> bool:
        try:
            float(text.removesuffix(" %").replace(",", ""))
        except ValueError:
            return False
        return True

    def cell(m: str, h: str) -> str:
        if not (is_number(h) and is_number(m)):
            return m
        if m.endswith(" %") and h.endswith(" %"):
            return f"{m[:-2]} ± {h}"
        return f"{m} ± {h}"

    if mean.shape != half.shape or not mean.index.equals(half.index) \
            or not mean.columns.equals(half.columns):
        raise ValueError("plus_minus needs two tables of the same rows and columns")
    out = mean.copy()
    for column in mean.columns:
        out[column] = [cell(str(m), str(h)) for m, h in zip(mean[column], half[column])]
    return out


def markdown(table: pd.DataFrame, index_names=()) -> str:
    """``table`` as a Markdown table (its row labels first, headed ``index_names``): for
    tables of prose, which the book's theme wraps and aligns to the left, unlike the
    right-aligned one-line cells of the numeric tables."""
    labels = [i if isinstance(i, tuple) else (i,) for i in table.index]
    header = [*index_names, *(str(c) for c in table.columns)]
    header += [""] * (len(labels[0]) + len(table.columns) - len(header))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in zip(labels, table.itertuples(index=False)):
        lines.append("| " + " | ".join([*map(str, label), *map(str, row)]) + " |")
    return "\n".join(lines)


assert set(ERROR_UNITS) == set(ERROR_DECIMALS) == set(NAMES) == set(TARGETS)


def shown(iv: dict, decimals: int) -> str:
    """An interval as "mean ± half-width" with ``decimals`` (the mean alone without one)."""
    return "–" if iv["mean"] is None else with_half(iv["mean"], iv["half_width"], decimals)
