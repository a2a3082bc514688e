"""Neural backbones: CoverageMLP (primary) and CoverageMamba3 (physics backup)."""
from .base import CoverageModel
from .mlp import CoverageMLP, MLPConfig

# Checkpoints name their model class; only these can be rebuilt from one.
REGISTRY = {"CoverageMLP": (CoverageMLP, MLPConfig)}

__all__ = ["CoverageModel", "CoverageMLP", "MLPConfig", "REGISTRY"]
