"""Compare the claims of two finished runs by ``verify``'s rule (benchmark-style script, not a
test): the pinned results of one machine against a run made elsewhere, without rerunning.

    .venv/bin/python benchmarks/claims_between.py PINNED_FOLDER RUN_FOLDER

Each folder is a data folder (``data/paper``) or a pins folder (``pins/paper``): it holds
``results/metrics.json`` and, for the claims over seeds, ``results/seeds.json``. Prints the
claim table (``verify.table``) and the counts (agreed to the printed digit, within the pinned
interval, not, timings); exit status 1 when a claim does not agree.
"""
import sys
from pathlib import Path

from coverage_lib.pipeline import verify


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not all((Path(a) / "results" / "metrics.json").is_file() for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    rows = verify.claims(Path(args[0]), Path(args[1]))
    print(verify.table(rows))
    n = verify.counts(rows)
    print(f"{n['claims']} claims: {n['printed_digits']} agreed to the printed digit, "
          f"{n['within_interval']} within their interval, {n['mismatches']} not, "
          f"{n['timings']} timings not compared")
    return 1 if n["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
