"""Neural backbones: CoverageMLP (primary) and CoverageMamba3 (physics backup)."""
from .base import CoverageModel
from .mamba_backbone import CoverageMamba3, Mamba3Config
from .mlp import CoverageMLP, MLPConfig

# Checkpoints name their model class; only these can be rebuilt from one.
REGISTRY = {"CoverageMLP": (CoverageMLP, MLPConfig),
            "CoverageMamba3": (CoverageMamba3, Mamba3Config)}

__all__ = ["CoverageModel", "CoverageMLP", "MLPConfig", "CoverageMamba3", "Mamba3Config",
           "REGISTRY"]
