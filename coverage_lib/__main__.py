"""``python -m coverage_lib run --profile quick|paper [--force]``"""
import sys

from .pipeline import main

sys.exit(main())
