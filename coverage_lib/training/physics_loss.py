"""The physics loss: the rules of the book's physics page as penalties on unlabeled collocation points.

Collocation points are drawn from the whole physical domain of ``physics.sampling.draw_features`` —
the out-of-distribution ranges (high frequency, heavy rain, long distance) included: physics
is knowledge, not labels, so no target from those ranges is ever used. Per point it penalises

1. received power rising with distance (×1.1) or rain rate (+5 mm/h): relu(ΔP)²;
2. radius changing with distance: (Δr)² on the normalised log-radius;
3. area ≠ π·r²/10⁶; 4. SINR ≠ P_rx − N − 10·log10(1 + INR); 5. qos ≠ qos(SINR),

each in normalised target units, averaged over a batch of points and scaled by ``weight``.

The backup trained with it until it got its law head (``models.law_head``), which obeys rules
1 and 2 by construction and the identities to float32 rounding; the training notebook of the
backup now evaluates it (``all_penalties``) to show that nothing is left for it to teach. The
``extra_loss`` hook stays for any backbone without a law head.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..core import validation
from ..physics import propagation
from ..core.schema import TARGETS
from ..physics.sampling import draw_features
from ..models.law_head import qos_from_sinr
from ..models.normalization import AREA_OFFSET_KM2, RADIUS_OFFSET_M
from ..physics.rules import DISTANCE_FACTOR, RAIN_STEP_MMH

RULES = ("power_vs_distance", "power_vs_rain", "radius_vs_distance", "area_identity",
         "sinr_identity", "qos_identity")


class PhysicsLoss:
    """``extra_loss`` hook of ``training.trainer.train``: returns {"physics_loss": weighted penalty}.

    A pool of ``n_points`` collocation points is drawn once (seeded); each call takes a random
    batch from it with torch's global RNG, which the trainer saves and restores on resume.
    The qos identity uses ``implementation_gap_db``; left out, the model's own
    (``model.physics_assumptions``: its data set's), else the library default.
    """

    def __init__(self, normalizer, weight: float, n_points: int = 100_000,
                 batch_size: int = 256, seed: int = 0,
                 implementation_gap_db: float | None = None):
        validation.non_negative_number("physics weight", weight)
        if implementation_gap_db is not None:
            validation.number("implementation_gap_db", implementation_gap_db)
        self.weight, self.batch_size = float(weight), batch_size
        self.implementation_gap_db = implementation_gap_db
        frame = draw_features(n_points, np.random.default_rng([seed, 2]))
        farther = frame.assign(distance_m=frame["distance_m"] * DISTANCE_FACTOR)
        rainier = frame.assign(rain_rate_mmh=frame["rain_rate_mmh"] + RAIN_STEP_MMH)
        self.x = normalizer.features(frame)
        self.x_farther = normalizer.features(farther)
        self.x_rainier = normalizer.features(rainier)
        self.noise_and_interference_db = torch.as_tensor(
            propagation.thermal_noise_dbm(frame["bandwidth_mhz"], frame["noise_figure_db"])
            + propagation.interference_penalty_db(frame["inr_db"]), dtype=torch.float32)
        self.mean = torch.as_tensor(normalizer.target_mean, dtype=torch.float32)
        self.std = torch.as_tensor(normalizer.target_std, dtype=torch.float32)

    def penalties(self, model, idx) -> dict:
        """Each rule's mean penalty on the points ``idx`` (unweighted, normalised units)."""
        p, s, r, a, q = (TARGETS.index(t) for t in ("received_power_dbm", "sinr_db",
                                                    "coverage_radius_m", "coverage_area_km2",
                                                    "qos_score"))
        weight = next(model.parameters(), None)  # the trainer's device (on the CPU: no copies)
        device = weight.device if weight is not None else torch.device("cpu")
        y = model(self.x[idx].to(device))
        y_far = model(self.x_farther[idx].to(device))
        y_rain = model(self.x_rainier[idx].to(device))
        mean, std = self.mean.to(device), self.std.to(device)
        phys = y * std + mean
        log_radius = phys[:, r]
        radius = torch.clamp(10.0 ** log_radius - RADIUS_OFFSET_M, min=0.0)
        area_from_radius = torch.log10(math.pi * radius ** 2 / 1e6 + AREA_OFFSET_KM2)
        sinr_from_power = phys[:, p] - self.noise_and_interference_db[idx].to(device)
        gap = self.implementation_gap_db
        if gap is None:
            gap = propagation.assumptions(getattr(model, "physics_assumptions", None))[
                "implementation_gap_db"]
        qos_of_sinr = qos_from_sinr(phys[:, s], gap)
        return {
            "power_vs_distance": torch.relu(y_far[:, p] - y[:, p]).pow(2).mean(),
            "power_vs_rain": torch.relu(y_rain[:, p] - y[:, p]).pow(2).mean(),
            "radius_vs_distance": (y_far[:, r] - y[:, r]).pow(2).mean(),
            "area_identity": ((phys[:, a] - area_from_radius) / std[a]).pow(2).mean(),
            "sinr_identity": ((phys[:, s] - sinr_from_power) / std[s]).pow(2).mean(),
            "qos_identity": ((phys[:, q] - qos_of_sinr) / std[q]).pow(2).mean(),
        }

    def all_penalties(self, model, batch_size: int = 4096) -> pd.Series:
        """Each rule's mean penalty over the whole pool of points (no gradient), as a Series
        named "penalty" indexed by rule."""
        sums = dict.fromkeys(RULES, 0.0)
        with torch.no_grad():
            for start in range(0, len(self.x), batch_size):
                idx = torch.arange(start, min(start + batch_size, len(self.x)))
                for rule, value in self.penalties(model, idx).items():
                    sums[rule] += float(value) * len(idx)
        return pd.Series({rule: total / len(self.x) for rule, total in sums.items()},
                         name="penalty")

    def __call__(self, model, x_batch) -> dict:
        idx = torch.randint(len(self.x), (self.batch_size,))
        total = sum(self.penalties(model, idx).values())
        return {"physics_loss": self.weight * total}

