"""What both backbones share: the normalisation as buffers, the ``predict`` contract, and
where the network runs (``resolve_device``)."""
from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import validation
from ..physics import propagation
from ..core.schema import TARGET_INDEX, TARGETS
from ..core.links import feature_array, frame_array
from .normalization import Normalizer

OUTPUTS = ("consistent", "raw")
PRECISIONS = ("fp32", "bf16")
# Rows per forward pass. Measured on 2 CPU cores (40k validation rows): the MLP gives 197k
# rows/s at 4096 and 83k at 65536; the Mamba-3's parallel scan 23k and 6k (its (L, L) kernels
# for 65536 rows fall out of cache).
PREDICT_BATCH = 4096


def _check_options(batch_size, outputs, precision) -> None:
    validation.one_of(*OUTPUTS)("outputs", outputs)
    validation.one_of(*PRECISIONS)("precision", precision)
    validation.positive_int("batch_size", batch_size)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device a ``device`` parameter names: "auto" is CUDA when available, else the
    CPU; "cpu", "cuda", "cuda:N" as torch spells them (``core.validation.torch_device`` checks the
    name and refuses a CUDA device this machine lacks). A torch.device passes through."""
    if isinstance(name, torch.device):
        return name
    validation.torch_device("device", name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """"cpu", or "cuda:N (<GPU name>)": what a history and a checkpoint record."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


class CoverageModel(nn.Module):
    """A backbone maps normalised features (batch, 13) to normalised targets (batch, 5).

    Subclasses implement ``forward``; ``predict`` takes a features DataFrame in physical units
    and returns the five targets in physical units.

    The network has a head per target. ``predict`` serves them physics-consistent by default
    (``outputs="consistent"``): received power and radius from their heads, SINR, area and
    qos derived from them by the identities of the book's physics page
    (``propagation.consistent_targets``), radius clipped to [0, d_max]. ``outputs="raw"``
    returns the five heads as they are.

    ``physics_assumptions`` are the edge SINR and implementation gap of the data the model
    learns from (``dataset.physics_assumptions``): qos is derived with that gap. Left out, the
    library defaults (``propagation.ASSUMPTIONS``). The trainer refuses a model whose assumptions
    differ from its data set's, and checkpoints carry them.
    """

    def __init__(self, stats: dict, physics_assumptions: dict | None = None):
        super().__init__()
        self.normalizer = Normalizer(stats)
        self.physics_assumptions = propagation.assumptions(physics_assumptions)

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
                outputs: str = "consistent", precision: str = "fp32",
                device: str | torch.device | None = None) -> pd.DataFrame:
        """Targets in physical units for each row of ``features`` (columns: FEATURES).

        A missing or extra column, NaN or inf, ``outputs`` not in OUTPUTS or ``precision``
        not in PRECISIONS → ValueError. ``predict_array`` is the same without pandas.
        ``device``: where the network runs (see ``network_outputs``).
        """
        _check_options(batch_size, outputs, precision)
        y = self._predict_checked(frame_array(features), batch_size, outputs, precision, device)
        return pd.DataFrame(y, columns=TARGET_INDEX, index=features.index)

    def predict_array(self, x: np.ndarray, batch_size: int = PREDICT_BATCH,
                      outputs: str = "consistent", precision: str = "fp32",
                      device: str | torch.device | None = None) -> np.ndarray:
        """``predict`` on links given as a (rows, 13) array in FEATURES order (checked as
        ``links.feature_array`` checks it); returns a (rows, 5) float64 array in TARGETS order.

        ``precision``: "fp32" (the default, the paper's tables) or "bf16" (the forward pass
        under bfloat16 autocast; its accuracy cost is measured by ``serving``).
        ``device``: where the network runs (see ``network_outputs``).
        """
        _check_options(batch_size, outputs, precision)
        return self._predict_checked(feature_array(x), batch_size, outputs, precision, device)

    def _predict_checked(self, x, batch_size, outputs, precision, device=None) -> np.ndarray:
        return self.outputs_from(x, self.network_outputs(
            self.normalizer.feature_array(x), batch_size, precision, device), outputs)

    def network_outputs(self, normalised: torch.Tensor, batch_size: int = PREDICT_BATCH,
                        precision: str = "fp32",
                        device: str | torch.device | None = None) -> torch.Tensor:
        """The network on normalised links, in eval mode and chunks of ``batch_size`` rows;
        a CPU float32 tensor whatever device ran it.

        ``device``: None runs it where the model's parameters are; a device name ("auto",
        "cpu", "cuda", "cuda:N"; ``resolve_device``) or a torch.device moves the model there
        first (in place, as ``Module.to`` does). Each chunk of rows goes to that device.
        """
        here = next(self.parameters()).device
        if device is not None:
            device = resolve_device(device)
            if device != here:
                self.to(device)
                here = next(self.parameters()).device  # "cuda" resolves to "cuda:0"
        was_training = self.training
        if was_training:
            self.eval()
        mixed = torch.autocast(here.type, torch.bfloat16) if precision == "bf16" else \
            contextlib.nullcontext()  # an autocast context costs even when disabled
        with torch.inference_mode(), mixed:
            chunks = [self(normalised[i:i + batch_size].to(here)).float().cpu()
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
        return propagation.consistent_array(x, raw[:, TARGETS.index("received_power_dbm")],
                                        raw[:, TARGETS.index("coverage_radius_m")],
                                        self.physics_assumptions["implementation_gap_db"])
