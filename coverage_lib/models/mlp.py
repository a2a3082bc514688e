"""CoverageMLP: the primary, low-latency backbone, 13 → 256×8 → 5."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..core import validation
from ..core.schema import FEATURES, TARGETS
from .base import CoverageModel
from .law_head import (
    LawHead, LawHeaded, MEDIUM_COEFFICIENTS, MEDIUM_INPUTS, PATH_COEFFICIENTS, PATH_INPUTS)

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}
NORMS = {"layernorm": nn.LayerNorm, "none": None}


@dataclass(frozen=True)
class MLPConfig:
    width: int = 256
    depth: int = 8           # hidden layers
    activation: str = "silu"
    norm: str = "layernorm"
    dropout: float = 0.0

    def __post_init__(self):
        validation.positive_int("width", self.width)
        validation.positive_int("depth", self.depth)
        validation.one_of(*sorted(ACTIVATIONS))("activation", self.activation)
        validation.one_of(*sorted(NORMS))("norm", self.norm)
        validation.unit_interval("dropout", self.dropout)


class CoverageMLP(CoverageModel):
    """Eight hidden Linear → LayerNorm → SiLU (→ Dropout) layers of width 256, then 5 outputs.

    Inputs and outputs are normalised (``coverage_lib.models.normalization``); ``predict`` maps
    physical features to physical targets.
    """

    def __init__(self, stats: dict, config: MLPConfig = MLPConfig(),
                 physics_assumptions: dict | None = None):
        super().__init__(stats, physics_assumptions)
        self.mlp_config = config
        self.net = network(len(FEATURES), len(TARGETS), config)

    @property
    def config(self) -> dict:
        return asdict(self.mlp_config)

    def forward(self, x):
        return self.net(x)


def network(n_in: int, n_out: int, config: MLPConfig) -> nn.Sequential:
    """``config.depth`` hidden Linear → norm → activation (→ Dropout) layers, then n_out."""
    layers, width_in = [], n_in
    for _ in range(config.depth):
        layers.append(nn.Linear(width_in, config.width))
        if NORMS[config.norm] is not None:
            layers.append(NORMS[config.norm](config.width))
        layers.append(ACTIVATIONS[config.activation]())
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
        width_in = config.width
    layers.append(nn.Linear(width_in, n_out))
    return nn.Sequential(*layers)


class CoverageLawMLP(LawHeaded, CoverageModel):
    """The ablation of the backup: the Mamba-3's two encoders replaced by MLP bodies (one over
    the path's geometry, one over the medium: ``law_head``), ending in the same law head.
    Beside CoverageMLP and CoverageMamba3 it tells whether an out-of-distribution gain comes
    from the head or from the Mamba-3 encoder."""

    def __init__(self, stats: dict, config: MLPConfig = MLPConfig(),
                 physics_assumptions: dict | None = None):
        super().__init__(stats, physics_assumptions)
        self.mlp_config = config
        self.path = network(len(PATH_INPUTS), len(PATH_COEFFICIENTS), config)
        self.medium = network(len(MEDIUM_INPUTS), len(MEDIUM_COEFFICIENTS), config)
        self.law = LawHead(self.normalizer, self.physics_assumptions)

    @property
    def config(self) -> dict:
        return asdict(self.mlp_config)
