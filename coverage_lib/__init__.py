"""D²TL Coverage: physics-generated coverage data, two neural backbones and their evaluation."""

__version__ = "0.1.0"

# The layers, bottom to top: each subpackage imports only from the layers below it
# (tests/test_layers.py reads every import and fails on an upward arrow or a circle).
LAYERS = ("core", "physics", "datasets", "models", "training", "evaluation", "report",
          "pipeline")
