"""The one normalisation both backbones share, fitted on the training split only.

Features spanning decades (frequency, distance, bandwidth) enter as log10, rain as log1p, then
every feature is standardised. Targets are standardised too, radius and area on a log scale
(they span four decades and are 0 where even 10 m fails). The statistics travel in every
checkpoint as plain numbers, so a model is usable from its checkpoint alone.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..core.schema import FEATURES, TARGET_INDEX, TARGETS

FEATURE_TRANSFORMS = {"frequency_ghz": "log10", "distance_m": "log10",
                      "bandwidth_mhz": "log10", "rain_rate_mmh": "log1p"}
# Offsets keep log10 finite at radius 0 (1 m) and area 0 (the area of a 1 m radius).
RADIUS_OFFSET_M = 1.0
AREA_OFFSET_KM2 = np.pi * RADIUS_OFFSET_M ** 2 / 1e6
TARGET_TRANSFORMS = {"coverage_radius_m": "log10_radius", "coverage_area_km2": "log10_area"}
_FEATURE_TRANSFORM_COLUMNS = [(FEATURES.index(c), k) for c, k in FEATURE_TRANSFORMS.items()]
_TARGET_TRANSFORM_COLUMNS = [(TARGETS.index(c), k) for c, k in TARGET_TRANSFORMS.items()]


def forward_transform(kind: str | None, x: np.ndarray) -> np.ndarray:
    if kind is None:
        return x
    if kind == "log10":
        return np.log10(x)
    if kind == "log1p":
        return np.log1p(x)
    if kind == "log10_radius":
        return np.log10(np.maximum(x, 0.0) + RADIUS_OFFSET_M)
    if kind == "log10_area":
        return np.log10(np.maximum(x, 0.0) + AREA_OFFSET_KM2)
    raise ValueError(f"unknown transform {kind!r}")


def inverse_transform(kind: str | None, y: np.ndarray) -> np.ndarray:
    if kind is None:
        return y
    if kind == "log10_radius":
        return np.maximum(10.0 ** y - RADIUS_OFFSET_M, 0.0)
    if kind == "log10_area":
        return np.maximum(10.0 ** y - AREA_OFFSET_KM2, 0.0)
    raise ValueError(f"transform {kind!r} has no inverse here")


class Normalizer:
    """Transform-then-standardise for features and targets, from training-split statistics."""

    def __init__(self, stats: dict):
        self.stats = stats
        self.feature_mean = np.array([stats["features"][c]["mean"] for c in FEATURES])
        self.feature_std = np.array([stats["features"][c]["std"] for c in FEATURES])
        self.target_mean = np.array([stats["targets"][c]["mean"] for c in TARGETS])
        self.target_std = np.array([stats["targets"][c]["std"] for c in TARGETS])

    @classmethod
    def fit(cls, train: pd.DataFrame) -> "Normalizer":
        def stats_of(columns, transforms):
            out = {}
            for c in columns:
                v = forward_transform(transforms.get(c), train[c].to_numpy(dtype=float))
                out[c] = {"mean": float(v.mean()), "std": float(max(v.std(), 1e-12)),
                          "min": float(v.min()), "max": float(v.max()),  # after the transform
                          "transform": transforms.get(c)}
            return out
        return cls({"features": stats_of(FEATURES, FEATURE_TRANSFORMS),
                    "targets": stats_of(TARGETS, TARGET_TRANSFORMS)})

    def to_dict(self) -> dict:
        return self.stats

    def features(self, frame: pd.DataFrame) -> torch.Tensor:
        return self.feature_array(frame[list(FEATURES)].to_numpy(dtype=float))

    def feature_array(self, x: np.ndarray) -> torch.Tensor:
        """Normalised float32 tensor of links given as a (rows, 13) array in FEATURES order."""
        x = np.array(x, dtype=float)  # a copy: the transforms work in place
        for j, kind in _FEATURE_TRANSFORM_COLUMNS:
            x[:, j] = forward_transform(kind, x[:, j])
        return torch.from_numpy(((x - self.feature_mean) / self.feature_std).astype(np.float32))

    def targets(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.as_tensor(self.normalised_target_array(
            frame[list(TARGETS)].to_numpy(dtype=float)), dtype=torch.float32)

    def normalised_target_array(self, y: np.ndarray) -> np.ndarray:
        """Physical targets (rows, 5) in TARGETS order, transformed and standardised (float64):
        the scale the networks learn on, and the Selector compares them on."""
        y = np.array(y, dtype=float)  # a copy: the transforms work in place
        for j, kind in _TARGET_TRANSFORM_COLUMNS:
            y[:, j] = forward_transform(kind, y[:, j])
        return (y - self.target_mean) / self.target_std

    def targets_to_frame(self, y: torch.Tensor, index=None) -> pd.DataFrame:
        return pd.DataFrame(self.target_array(y), columns=TARGET_INDEX, index=index)

    def target_array(self, y) -> np.ndarray:
        """Normalised targets (rows, 5), a tensor or an array, back in physical units, as a
        float64 array."""
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().double().numpy()
        y = np.asarray(y, dtype=float) * self.target_std + self.target_mean
        for j, kind in _TARGET_TRANSFORM_COLUMNS:
            y[:, j] = inverse_transform(kind, y[:, j])
        return y
