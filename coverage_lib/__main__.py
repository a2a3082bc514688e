"""``python -m coverage_lib run --profile quick|paper [--force]`` and
``python -m coverage_lib book [--profile quick|paper] [--check]``"""
import sys

from .pipeline.cli import main

sys.exit(main())
