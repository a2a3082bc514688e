"""A data set's fingerprint: what identifies its numbers across machines, where its bytes cannot.

numpy and PyTorch pick their SIMD kernels by CPU, so the same generator with the same seed
writes floats whose last bits differ from one CPU to another, and every file's sha256 with
them. The fingerprint records, for every split and column, the row count, the sum, the sum of
absolute values, the sum of squares, the minimum and the maximum, and the values of a few rows
drawn by a fixed seed (the same rows on every machine: they depend on the row count only).
``differences`` compares two fingerprints at the relative tolerance ``RTOL``:

- a count must be equal; a sum within ``RTOL`` of the sum of absolute values (its scale), a
  sum of squares within ``RTOL`` of itself, a minimum, maximum or sampled value within
  ``RTOL`` of the column's largest magnitude;
- last-bit differences move these by about 1e-16 relative (one ulp in every cell of a split:
  ``benchmarks/bench_fingerprint.py`` measures it), another seed, another row count or a
  formula changed by a part in a million by 1e-6 or more: ``RTOL`` = 1e-9 lies three orders of
  magnitude from each.
"""
from __future__ import annotations

import math

import numpy as np

FORMAT = 1
RTOL = 1e-9
SAMPLE_ROWS = 8     # rows of each split whose values are recorded
SAMPLE_SEED = 20261207  # fixed: the sampled rows depend on the split's row count only
STATS = ("count", "sum", "sum_abs", "sum_sq", "min", "max")


def _column(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def of_frames(frames: dict) -> dict:
    """The fingerprint of {split name: DataFrame}: per split, each column's ``STATS`` and the
    values of ``SAMPLE_ROWS`` rows chosen by ``SAMPLE_SEED`` (NaN kept as NaN)."""
    splits = {}
    for name, frame in sorted(frames.items()):
        n = len(frame)
        rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(
            n, size=min(n, SAMPLE_ROWS), replace=False)) if n else np.array([], dtype=int)
        columns = {}
        for column in frame.columns:
            x = _column(frame[column].to_numpy())
            finite = x[np.isfinite(x)]
            columns[column] = {
                "count": int(n), "sum": float(finite.sum()),
                "sum_abs": float(np.abs(finite).sum()), "sum_sq": float((finite ** 2).sum()),
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
                "nonfinite": int(n - finite.size),
                "sample": [None if not math.isfinite(v) else float(v) for v in x[rows]],
            }
        splits[name] = {"rows": int(n), "sample_rows": rows.tolist(), "columns": columns}
    return {"format": FORMAT, "splits": splits}


def _scale(stats: dict) -> float:
    return max(abs(stats["min"] or 0.0), abs(stats["max"] or 0.0))


def _relative(a, b, scale: float) -> float:
    """|a − b| relative to ``scale`` (0 when equal, inf when only one is missing)."""
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    if a == b:
        return 0.0
    return abs(a - b) / scale if scale > 0 else math.inf


def compare(recorded: dict, current: dict) -> list[dict]:
    """Every statistic of ``recorded`` against ``current``: [{"where": "split/column
    statistic", "relative": difference relative to its scale}], the largest first. A split,
    a column or a count that differs is an infinite difference."""
    found = []
    for split, a in recorded["splits"].items():
        b = current["splits"].get(split)
        if b is None or a["rows"] != b["rows"]:
            rows = None if b is None else b["rows"]
            found.append({"where": f"{split} rows ({a['rows']} recorded, {rows} here)",
                          "relative": math.inf})
            continue
        for column, sa in a["columns"].items():
            sb = b["columns"].get(column)
            if sb is None:
                found.append({"where": f"{split}/{column} (not here)", "relative": math.inf})
                continue
            scale = max(_scale(sa), _scale(sb))
            pairs = {
                "count": (sa["count"], sb["count"], None),
                "non-finite count": (sa["nonfinite"], sb["nonfinite"], None),
                "sum": (sa["sum"], sb["sum"], max(sa["sum_abs"], sb["sum_abs"])),
                "sum of absolute values": (sa["sum_abs"], sb["sum_abs"],
                                           max(sa["sum_abs"], sb["sum_abs"])),
                "sum of squares": (sa["sum_sq"], sb["sum_sq"], max(sa["sum_sq"], sb["sum_sq"])),
                "minimum": (sa["min"], sb["min"], scale),
                "maximum": (sa["max"], sb["max"], scale),
                **{f"row {r}": (x, y, scale) for r, x, y in zip(
                    a["sample_rows"], sa["sample"], sb["sample"])},
            }
            for stat, (x, y, s) in pairs.items():
                rel = (0.0 if x == y else math.inf) if s is None else _relative(x, y, s)
                found.append({"where": f"{split}/{column} {stat}", "relative": rel})
    return sorted(found, key=lambda d: -d["relative"])


def agreement(recorded: dict, current: dict, rtol: float = RTOL) -> dict:
    """How ``current`` agrees with ``recorded``: {"state": "bit-identical" (every statistic
    equal), "within-tolerance" or "different", "rtol", "max_relative", "where" (the largest
    difference), "differences" (those over ``rtol``, at most five, as sentences)}."""
    found = compare(recorded, current)
    worst = found[0] if found else {"where": "", "relative": 0.0}
    over = [d for d in found if d["relative"] > rtol]
    state = ("bit-identical" if worst["relative"] == 0 else
             "within-tolerance" if not over else "different")
    return {"state": state, "rtol": rtol,
            "max_relative": worst["relative"] if math.isfinite(worst["relative"]) else None,
            "where": worst["where"],
            "differences": [f"{d['where']}: relative difference {_shown(d['relative'])} "
                            f"(tolerance {rtol:g})" for d in over[:5]]}


def _shown(relative: float) -> str:
    return "beyond measure" if math.isinf(relative) else format(relative, ".3g")
