"""How fast the book's live explorer answers and redraws, in headless Chromium.

    .venv/bin/python benchmarks/bench_explorer.py [_build/html] [--changes 30]

Opens book/explorer.html of a built book (served on 127.0.0.1 by tools/headless.py), then
changes the link through the page's own inputs, alternating the frequency (which redraws both
sweeps) and the distance (which only moves the marker): per change, the page's own timings
(``d2tlExplorer.timings``: answering the link with both backbones and the Selector, the
distance sweep's recomputation and redraw, the rain sweep's, the whole update). Prints the
median and the largest of each over the changes after the first (the first includes the
JIT's warm-up; it is printed apart), the explorer's asset sizes, and the user and system CPU
of Chromium's processes over the run (``Book.cpu_times``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("headless", REPO / "tools" / "headless.py")
headless = importlib.util.module_from_spec(spec)
spec.loader.exec_module(headless)

SET = """(async () => {
  const row = document.querySelector('[data-feature="%s"] .d2tl-value');
  row.value = "%s"; row.dispatchEvent(new Event('change'));
  return JSON.stringify(d2tlExplorer.timings); })()"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default=str(REPO / "_build" / "html"))
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    assets = Path(args.html) / "_static" / "explorer"
    for f in sorted(assets.iterdir()):
        print(f"asset {f.name:12s} {f.stat().st_size:>10,d} bytes")
    start = time.perf_counter()
    with headless.Book(args.html) as book:
        book.open("book/explorer.html")
        book.evaluate("window.d2tlExplorer.ready")
        first = json.loads(book.evaluate("JSON.stringify(d2tlExplorer.timings)"))
        rows = []
        for k in range(args.changes):
            feature, value = (("frequency_ghz", f"{2 + (k % 7) * 3.1:g}") if k % 2 == 0
                              else ("distance_m", f"{200 + 97 * k:g}"))
            rows.append((feature, json.loads(book.evaluate(SET % (feature, value)))))
        user, system = book.cpu_times()
    wall = time.perf_counter() - start
    print(f"first draw (cold JIT): " + ", ".join(f"{k} {v:.1f} ms" for k, v in first.items()))
    # A new frequency recomputes both sweeps; a new distance only the rain sweep (the distance
    # sweep's curves do not depend on the link's distance: its marker moves).
    for feature, keys in (("frequency_ghz", ("answer_ms", "distance_sweep_ms", "rain_sweep_ms",
                                             "update_ms")),
                          ("distance_m", ("answer_ms", "rain_sweep_ms", "update_ms"))):
        done = [t for f, t in rows if f == feature][1:]
        for key in keys:
            values = [t[key] for t in done]
            print(f"change {feature:14s} {key:18s} median {statistics.median(values):7.1f} ms"
                  f"   max {max(values):7.1f} ms   ({len(values)} changes)")
    print(f"wall {wall:.1f} s; Chromium user {user:.1f} s, system {system:.1f} s")


if __name__ == "__main__":
    main()
