"""CoverageMamba3: the physics backup backbone, Mamba-3 blocks over the link's features as
tokens, ending in the law head (``law_head``).

The encoder reads the features the propagation laws' coefficients depend on
(``law_head.LAW_INPUTS``: frequency, both heights, water vapour, scenario, LOS); distance and
rain rate enter only through the laws, transmit power, gain, bandwidth, noise figure and INR
only through the link budget and the SINR definition. Each feature becomes a token through its
own learned linear embedding (value·w_i + b_i, as in Mambular); pre-norm residual Mamba-3
blocks scan the tokens in FEATURES order; mean pooling and a small head give the laws'
coefficients, from which the law head computes the five normalised targets. ``bidirectional``
adds a second scan of each block over the reversed sequence, so every token sees every other
whatever the order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..core import validation
from .base import CoverageModel
from .law_head import (
    LawHead, LawHeaded, MEDIUM_COEFFICIENTS, MEDIUM_INPUTS, PATH_COEFFICIENTS, PATH_INPUTS)
from .mamba3 import Mamba3, SCANS, stacked_forward


@dataclass(frozen=True)
class Mamba3Config:
    d_model: int = 32
    d_state: int = 16
    n_layers: int = 2
    headdim: int = 16
    expand: int = 2
    rope_fraction: float = 0.5
    bidirectional: bool = True
    scan: str = "parallel"

    def __post_init__(self):
        for name in ("d_model", "d_state", "n_layers", "headdim", "expand"):
            validation.positive_int(name, getattr(self, name))
        validation.one_of(*SCANS)("scan", self.scan)


class MambaLayer(nn.Module):
    """x + Mamba3(RMSNorm(x)), plus the reversed-sequence scan when bidirectional."""

    def __init__(self, config: Mamba3Config):
        super().__init__()
        kwargs = dict(d_model=config.d_model, d_state=config.d_state, expand=config.expand,
                      headdim=config.headdim, rope_fraction=config.rope_fraction,
                      scan=config.scan)
        self.norm = nn.RMSNorm(config.d_model)
        self.forward_scan = Mamba3(**kwargs)
        self.backward_scan = Mamba3(**kwargs) if config.bidirectional else None

    def forward(self, x):
        h = self.norm(x)
        if self.backward_scan is None:
            return x + self.forward_scan(h)
        if self.forward_scan.scan_on(h.device) == "parallel":   # both directions as one
            ahead, back = stacked_forward((self.forward_scan, self.backward_scan), (h, h.flip(1)))
        else:
            ahead, back = self.forward_scan(h), self.backward_scan(h.flip(1))
        return x + (ahead + back.flip(1))


class TokenEncoder(nn.Module):
    """Features as tokens (a learned linear embedding each), Mamba-3 layers, mean pooling, a
    small head to ``n_out`` raw coefficients."""

    def __init__(self, n_tokens: int, n_out: int, config: Mamba3Config):
        super().__init__()
        d = config.d_model
        self.embed_weight = nn.Parameter(torch.randn(n_tokens, d) / d ** 0.5)
        self.embed_bias = nn.Parameter(torch.zeros(n_tokens, d))
        self.embed_bias._no_weight_decay = True  # a bias per token: not decayed (training.py)
        self.layers = nn.ModuleList(MambaLayer(config) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(d)
        self.head = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, n_out))

    def forward(self, x):
        tokens = x.unsqueeze(-1) * self.embed_weight + self.embed_bias  # (batch, tokens, d)
        for layer in self.layers:
            tokens = layer(tokens)
        return self.head(self.norm(tokens).mean(dim=1))


class CoverageMamba3(LawHeaded, CoverageModel):
    """Two Mamba-3 token encoders, one over the path's geometry (heights, scenario, LOS) giving
    the path-loss law's coefficients, one over the medium (frequency, water vapour) giving the
    rain and gas laws' coefficients; the law head turns them into the five targets."""

    # Its training step is hundreds of small operations on tensors of a few thousand rows
    # and two or four tokens: torch.compile fuses them (``training.compilation``).
    compiles_for_training = True

    def __init__(self, stats: dict, config: Mamba3Config = Mamba3Config(),
                 physics_assumptions: dict | None = None):
        super().__init__(stats, physics_assumptions)
        self.mamba_config = config
        self.path = TokenEncoder(len(PATH_INPUTS), len(PATH_COEFFICIENTS), config)
        self.medium = TokenEncoder(len(MEDIUM_INPUTS), len(MEDIUM_COEFFICIENTS), config)
        self.law = LawHead(self.normalizer, self.physics_assumptions)

    @property
    def config(self) -> dict:
        return asdict(self.mamba_config)
