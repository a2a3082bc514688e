"""What both backbones share: the normalisation as buffers, and the ``predict`` contract."""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from .. import params, physics
from ..normalization import Normalizer, check_features

OUTPUTS = ("consistent", "raw")
# Rows per forward pass. Measured on 2 CPU cores (40k validation rows): the MLP gives 197k
# rows/s at 4096 and 83k at 65536; the Mamba-3's parallel scan 23k and 6k (its (L, L) kernels
# for 65536 rows fall out of cache).
PREDICT_BATCH = 4096


class CoverageModel(nn.Module):
    """A backbone maps normalised features (batch, 13) to normalised targets (batch, 5).

    Subclasses implement ``forward``; ``predict`` takes a features DataFrame in physical units
    and returns the five targets in physical units.

    The network has a head per target. ``predict`` serves them physics-consistent by default
    (``outputs="consistent"``): received power and radius from their heads, SINR, area and
    qos derived from them by the identities of physics.md (``physics.consistent_targets``),
    radius clipped to [0, d_max]. ``outputs="raw"`` returns the five heads as they are.

    ``physics_assumptions`` are the edge SINR and implementation gap of the data the model
    learns from (``dataset.physics_assumptions``): qos is derived with that gap. Left out, the
    library defaults (``physics.ASSUMPTIONS``). The trainer refuses a model whose assumptions
    differ from its data set's, and checkpoints carry them.
    """

    def __init__(self, stats: dict, physics_assumptions: dict | None = None):
        super().__init__()
        self.normalizer = Normalizer(stats)
        self.physics_assumptions = physics.assumptions(physics_assumptions)

    @property
    def config(self) -> dict:
        raise NotImplementedError

    @property
    def n_parameters(self) -> int:
        """Trainable parameters (the results table's size column)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def summary(self) -> str:
        return f"{type(self).__name__}: {self.n_parameters:,} parameters, config {self.config}"

    def predict(self, features: pd.DataFrame, batch_size: int = PREDICT_BATCH,
                outputs: str = "consistent") -> pd.DataFrame:
        """Targets in physical units for each row of ``features`` (columns: FEATURES).

        A missing or extra column, NaN or inf, or ``outputs`` not in OUTPUTS → ValueError.
        """
        params.one_of(*OUTPUTS)("outputs", outputs)
        check_features(features)
        x = self.normalizer.features(features)
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            y = torch.cat([self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) \
                if len(x) else torch.empty(0, len(self.normalizer.target_mean))
        self.train(was_training)
        raw = self.normalizer.targets_to_frame(y, index=features.index)
        if outputs == "raw":
            return raw
        return physics.consistent_targets(
            features, raw["received_power_dbm"].to_numpy(), raw["coverage_radius_m"].to_numpy(),
            self.physics_assumptions["implementation_gap_db"])
