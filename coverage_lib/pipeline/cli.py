"""The command line: ``python -m coverage_lib run --profile P [--force] [--until STAGE]
[--scheduler ADDRESS] [--cpu-dispatch native|baseline]``, ``python -m coverage_lib book
[--profile P] [--check]`` and
``python -m coverage_lib pin --profile P`` and ``python -m coverage_lib verify --profile P
[--until STAGE] [--cpu-dispatch native|baseline]``.
"""
from __future__ import annotations

import os
import sys

from . import dispatch, profiles
from ..core import validation


SCHEDULER_ENV = "COVERAGE_DASK_SCHEDULER"
CPU_DISPATCH_HELP = ("the SIMD kernels every notebook kernel computes with: native (this CPU's) "
                     "or baseline (numpy's dispatched features off, PyTorch at its default "
                     "ISA: computes as another CPU would; see coverage_lib.pipeline.dispatch)")


def main(argv=None) -> int:
    """``python -m coverage_lib run|book ...``: parse the options, do it; the exit status
    (0 done, 1 a stage failed or ``verify`` found a claim not reproduced, 2 bad input, 3 the
    profile is busy)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coverage_lib",
                                     description="Run the D²TL Coverage notebook pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the notebooks of a profile with papermill")
    run_p.add_argument("--profile", required=True,
                       help=f"parameter profile: one of {profiles.available_profiles()}")
    run_p.add_argument("--force", action="store_true", help="rerun stages even if unchanged")
    run_p.add_argument("--until", default=None, metavar="STAGE",
                       help="the last stage to run (e.g. 01_data); default: every stage")
    run_p.add_argument("--cpu-dispatch", default="native", choices=dispatch.DISPATCHES,
                       help=CPU_DISPATCH_HELP)
    run_p.add_argument("--scheduler", default=os.environ.get(SCHEDULER_ENV) or None,
                       help="send the replicate chains (seeds, learning curves) to the Dask "
                            "scheduler at this address (tcp://host:8786) or scheduler file "
                            f"(*.json); default ${SCHEDULER_ENV}, else run them here")
    book_p = sub.add_parser("book", help="put a finished run into the book's source "
                                         "(book/executed/), one profile only")
    book_p.add_argument("--profile", default=None,
                        help="the profile the book shows (default: paper once it has "
                             "finished, else quick)")
    book_p.add_argument("--check", action="store_true",
                        help="only check that book/executed/ holds one profile, whole")
    pin_p = sub.add_parser("pin", help="commit-ready copy of a run's finished stages under "
                                       "pins/<profile>/ (not the data set), with a MANIFEST")
    pin_p.add_argument("--profile", required=True,
                       help=f"parameter profile: one of {profiles.available_profiles()}")
    verify_p = sub.add_parser("verify", help="rerun a profile from nothing in build/verify/ "
                                             "and compare it with its pins, claim by claim")
    verify_p.add_argument("--profile", required=True,
                          help=f"parameter profile: one of {profiles.available_profiles()}")
    verify_p.add_argument("--until", default=None, metavar="STAGE",
                          help="stop the rerun at this stage (04_evaluate: the main run only; "
                               "the claims over seeds are then not checked)")
    verify_p.add_argument("--cpu-dispatch", default="native", choices=dispatch.DISPATCHES,
                          help=CPU_DISPATCH_HELP)
    args = parser.parse_args(argv)
    try:  # a profile that does not exist is refused before torch and papermill load
        if args.command in ("run", "verify", "pin") or args.profile is not None:
            validation.one_of(*profiles.available_profiles())("profile", args.profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from . import pins, verify
    from .execution import PipelineError
    from .locks import PipelineBusy
    from .publishing import check_book, publish
    from .run import run

    try:
        if args.command == "run":
            run(args.profile, force=args.force, scheduler=args.scheduler, until=args.until,
                cpu_dispatch=args.cpu_dispatch)
        elif args.command == "verify":
            verify.verify(args.profile, until=args.until, dispatch=args.cpu_dispatch)
        elif args.command == "pin":
            pins.pin(args.profile)
        elif args.check:
            print(f"book/executed/ holds profile {check_book()!r}")
        else:
            publish(args.profile)
    except (ValueError, PipelineError, PipelineBusy, RuntimeError, verify.VerifyMismatch) as err:
        print(f"error: {err}", file=sys.stderr)
        return {ValueError: 2, PipelineBusy: 3}.get(type(err), 1)
    return 0
