"""D²TL Coverage: physics-generated coverage data, two neural backbones and their evaluation."""

__version__ = "0.1.0"
