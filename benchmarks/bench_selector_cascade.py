"""The Selector's cascade against its two backbones' own calls (benchmark, not a test).

At batch ``--rows`` of the test split: ``Selector.predict_array`` beside what its cascade runs,
each timed alone: the primary's ``predict_array`` on the in-domain rows (out-of-domain rows
skip it) and the backup's on the rows the gates routed to it (from the Selector's route codes).
Their ratio says what the gates, the split and the merge cost beyond the two models; the
"routing estimate" of the evaluation's serving goals (the primary on every row, the backup at
the full batch scaled by the routed share) is printed beside it, with how far it is off.
Medians of ``--repeats`` calls after one warm-up (``latency.median_seconds``); run it on an otherwise idle machine.

    .venv/bin/python benchmarks/bench_selector_cascade.py [--data-dir data/paper]
        [--rows 4096] [--threads 1] [--repeats 7]

Needs a finished run of the profile (its checkpoints, validation thresholds and test split).
"""
import argparse
import resource
import time

import numpy as np
import torch

from coverage_lib.core import paths
from coverage_lib.core.schema import FEATURES
from coverage_lib.datasets import dataset
from coverage_lib.evaluation import latency, scoring


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/paper")
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.rows < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(f"--rows, --repeats and --threads must be ≥ 1; got {args.rows}, "
                     f"{args.repeats}, {args.threads}")
    torch.set_num_threads(args.threads)
    wall0, usage0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

    selector = scoring.load_models(args.data_dir, lightgbm=False).selector
    test = dataset.load_split(paths.dataset_dir(args.data_dir), "test")
    x = test[FEATURES].to_numpy(dtype=np.float32)[:args.rows]
    code = selector.predict_array(x)[1]
    in_domain, routed = x[code != 1], x[code > 0]
    n = len(x)

    timed = {"selector": (selector.predict_array, x),
             "primary on every row": (selector.primary.predict_array, x),
             "primary on in-domain rows": (selector.primary.predict_array, in_domain),
             "backup on every row": (selector.backup.predict_array, x),
             "backup on routed rows": (selector.backup.predict_array, routed)}
    t = {name: latency.median_seconds(fn, rows, args.repeats, warmup=1)
         for name, (fn, rows) in timed.items()}
    share = len(routed) / n
    print(f"{n} test rows, {args.threads} thread(s): {len(routed)} routed to the backup "
          f"({share:.1%}), {n - len(in_domain)} out of domain (the primary skips them)")
    for name, seconds in t.items():
        print(f"  {name:28s} {seconds * 1e3:8.1f} ms")
    calls = t["primary on in-domain rows"] + t["backup on routed rows"]
    estimate = t["primary on every row"] + share * t["backup on every row"]
    print(f"Selector / (its two models' own calls) = {calls / t['selector']:.3f} "
          f"(1 = the gates, split and merge cost nothing)")
    print(f"Selector rows/s / routing estimate's rows/s = {estimate / t['selector']:.3f}; "
          f"the estimate is {estimate / calls - 1:+.1%} off the models' own calls "
          f"(the backup is cheaper per row at the routed batch: "
          f"{t['backup on routed rows'] / max(len(routed), 1) * 1e6:.1f} µs/row against "
          f"{t['backup on every row'] / n * 1e6:.1f} at {n})")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"wall {time.perf_counter() - wall0:.1f} s, user {usage.ru_utime - usage0.ru_utime:.1f} s, "
          f"sys {usage.ru_stime - usage0.ru_stime:.1f} s, minor faults "
          f"{usage.ru_minflt - usage0.ru_minflt}")


if __name__ == "__main__":
    main()
