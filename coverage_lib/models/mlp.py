"""CoverageMLP: the primary, low-latency backbone, 13 → 256×8 → 5."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import params
from ..dataset import FEATURES, TARGETS
from .base import CoverageModel

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
        params.positive_int("width", self.width)
        params.positive_int("depth", self.depth)
        params.one_of(*sorted(ACTIVATIONS))("activation", self.activation)
        params.one_of(*sorted(NORMS))("norm", self.norm)
        params.unit_interval("dropout", self.dropout)


class CoverageMLP(CoverageModel):
    """Eight hidden Linear → LayerNorm → SiLU (→ Dropout) layers of width 256, then 5 outputs.

    Inputs and outputs are normalised (``coverage_lib.normalization``); ``predict`` maps
    physical features to physical targets.
    """

    def __init__(self, stats: dict, config: MLPConfig = MLPConfig(),
                 physics_assumptions: dict | None = None):
        super().__init__(stats, physics_assumptions)
        self.mlp_config = config
        layers, width_in = [], len(FEATURES)
        for _ in range(config.depth):
            layers.append(nn.Linear(width_in, config.width))
            if NORMS[config.norm] is not None:
                layers.append(NORMS[config.norm](config.width))
            layers.append(ACTIVATIONS[config.activation]())
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width_in = config.width
        layers.append(nn.Linear(width_in, len(TARGETS)))
        self.net = nn.Sequential(*layers)

    @property
    def config(self) -> dict:
        return asdict(self.mlp_config)

    def forward(self, x):
        return self.net(x)


def inference_module(model: CoverageMLP):
    """A frozen TorchScript graph of the network for low-latency serving (normalised in,
    normalised out): the per-call Python and autograd overhead of eager mode is gone."""
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model.net.eval(), torch.zeros(1, len(FEATURES)))
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def run(x):
        with torch.inference_mode():
            return frozen(x)
    return run
