"""Neural backbones: CoverageMLP (primary) and CoverageMamba3 (physics backup); the registry of
models (``coverage_lib.registry``) names them for the rest of the project."""
from .base import CoverageModel
from .mamba_backbone import CoverageMamba3, Mamba3Config
from .mlp import CoverageMLP, MLPConfig

__all__ = ["CoverageModel", "CoverageMLP", "MLPConfig", "CoverageMamba3", "Mamba3Config"]
