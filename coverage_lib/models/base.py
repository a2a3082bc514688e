"""What both backbones share: the normalisation as buffers, and the ``predict`` contract."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import params, physics
from ..dataset import TARGETS
from ..links import feature_array, frame_array
from ..normalization import Normalizer

OUTPUTS = ("consistent", "raw")
PRECISIONS = ("fp32", "bf16")
# Rows per forward pass. Measured on 2 CPU cores (40k validation rows): the MLP gives 197k
# rows/s at 4096 and 83k at 65536; the Mamba-3's parallel scan 23k and 6k (its (L, L) kernels
# for 65536 rows fall out of cache).
PREDICT_BATCH = 4096


def _check_options(batch_size, outputs, precision) -> None:
    params.one_of(*OUTPUTS)("outputs", outputs)
    params.one_of(*PRECISIONS)("precision", precision)
    params.positive_int("batch_size", batch_size)


class CoverageModel(nn.Module):
    """A backbone maps normalised features (batch, 13) to normalised targets (batch, 5).

    Subclasses implement ``forward``; ``predict`` takes a features DataFrame in physical units
    and returns the five targets in physical units.

    The network has a head per target. ``predict`` serves them physics-consistent by default
    (``outputs="consistent"``): received power and radius from their heads, SINR, area and
    qos derived from them by the identities of the book's physics page (``physics.consistent_targets``),
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
                outputs: str = "consistent", precision: str = "fp32") -> pd.DataFrame:
        """Targets in physical units for each row of ``features`` (columns: FEATURES).

        A missing or extra column, NaN or inf, ``outputs`` not in OUTPUTS or ``precision``
        not in PRECISIONS → ValueError. ``predict_array`` is the same without pandas.
        """
        _check_options(batch_size, outputs, precision)
        y = self._predict_checked(frame_array(features), batch_size, outputs, precision)
        return pd.DataFrame(y, columns=list(TARGETS), index=features.index)

    def predict_array(self, x: np.ndarray, batch_size: int = PREDICT_BATCH,
                      outputs: str = "consistent", precision: str = "fp32") -> np.ndarray:
        """``predict`` on links given as a (rows, 13) array in FEATURES order (checked as
        ``links.feature_array`` checks it); returns a (rows, 5) float64 array in TARGETS order.

        ``precision``: "fp32" (the default, the paper's tables) or "bf16" (the forward pass
        under bfloat16 autocast; its accuracy cost is measured by ``serving``).
        """
        _check_options(batch_size, outputs, precision)
        return self._predict_checked(feature_array(x), batch_size, outputs, precision)

    def _predict_checked(self, x, batch_size, outputs, precision) -> np.ndarray:
        return self.outputs_from(x, self.network_outputs(
            self.normalizer.feature_array(x), batch_size, precision), outputs)

    def network_outputs(self, normalised: torch.Tensor, batch_size: int = PREDICT_BATCH,
                        precision: str = "fp32") -> torch.Tensor:
        """The network on normalised links, in eval mode and chunks of ``batch_size`` rows."""
        was_training = self.training
        if was_training:
            self.eval()
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16,
                                                    enabled=precision == "bf16"):
            chunks = [self(normalised[i:i + batch_size]).float()
                      for i in range(0, len(normalised), batch_size)]
        if was_training:
            self.train()
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks) if chunks else \
            torch.empty(0, len(self.normalizer.target_mean))

    def outputs_from(self, x: np.ndarray, y, outputs: str = "consistent") -> np.ndarray:
        """Physical targets (rows, 5) from the links ``x`` and the network's normalised
        outputs ``y`` (a tensor or an array, from this network however it was run: eager,
        TorchScript, ONNX Runtime): the raw heads, or served consistent (see the class)."""
        raw = self.normalizer.target_array(y)
        if outputs == "raw":
            return raw
        return physics.consistent_array(x, raw[:, TARGETS.index("received_power_dbm")],
                                        raw[:, TARGETS.index("coverage_radius_m")],
                                        self.physics_assumptions["implementation_gap_db"])
