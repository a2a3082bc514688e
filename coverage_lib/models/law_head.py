"""The law head: a backbone that predicts the coefficients of propagation laws, not the targets.

Two encoders (Mamba-3 token encoders in the backup, MLP bodies in the ablation) emit, per
link, the coefficients of the laws the data obey *in form*; the targets are computed from them.

- The path encoder sees the path's geometry, ``PATH_INPUTS`` (both heights, scenario, LOS),
  and gives the path loss in the log-distance form with a frequency exponent (the
  alpha-beta-gamma form) and a second slope past a bend:
  PL = A + n_f·log10 f + s₁·(x − 2) + (s₂ − s₁)·softplus(κ·(x − b − log10 f))/κ,
  x = log10 d3D [m], f in GHz: A the loss at 100 m and 1 GHz, n_f, s₁, s₂ ≥ 0 dB per decade by
  construction, the bend at 10^(b + log10 f) m (a breakpoint proportional to frequency, as the
  two-ray breakpoint 4·h_BS·h_UT·f/c is; 38.901 LOS has one, and NLOS, the maximum of two
  log-distance laws, bends the same way), κ > 0 its sharpness; plus an excess loss ε ≥ 0 dB/km
  for any loss linear in distance (RMa LOS has one).
- The medium encoder sees ``MEDIUM_INPUTS`` (frequency, water vapour) and gives the rain
  attenuation k·R^a dB/km (k > 0, a > 0) and the gas attenuation γ ≥ 0 dB/km.

Distance and rain rate enter only through these laws, never through an encoder, so the
prediction extrapolates in both exactly as the law does; frequency enters the path loss only
through the law too, and the attenuations through the medium encoder. An encoder never sees
a value outside the training split's range: its inputs are clamped to it (``encoder_bounds``),
so past the trained frequencies the attenuation coefficients stay those of the nearest trained
frequency and only the laws extrapolate (an encoder's output there is arbitrary: trained to
40 GHz, the backup's rain k fell from 0.48 at 40 GHz to 0.30 at 100 GHz, where P.838's rises to
1.37). Inside the range the clamp changes nothing. Transmit power and gain
enter only through the link budget, P = P_tx + G − PL − (ε + k·R^a + γ)·d3D[km]; bandwidth,
noise figure and INR only through the noise and SINR definitions (the book's physics page), so received
power falls with distance and rain, and the radius grows with power and gain, by construction.

The coverage radius is *solved* from the predicted law: the 2-D distance at which the median
SINR reaches the edge threshold, a monotone root found by section search on log10 d (16 sections a round, 5 rounds), then censored
to 0 (fails at 10 m) or d_max (passes at d_max) as in the data. For training, one Newton step
from the bracketed root carries the gradient of the root (implicit function theorem), and the
censoring passes gradients straight through, so a radius predicted past d_max for a row whose
radius is inside is still pulled in. The radius does not depend on the link's own distance.
SINR, area and qos follow from the identities of the book's physics page.

Nothing here calls the data generator's propagation formulas: the laws' coefficients are
learned from the training rows. Only the noise-power, SINR and qos definitions and the
domain's d_max are shared with ``physics``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ..physics import propagation
from ..core.schema import FEATURES, TARGETS
from ..core.links import check_features
from .normalization import AREA_OFFSET_KM2, FEATURE_TRANSFORMS, RADIUS_OFFSET_M

PATH_INPUTS = ("bs_height_m", "ue_height_m", "scenario", "los")   # the path-loss encoder's
MEDIUM_INPUTS = ("frequency_ghz", "water_vapour_gm3")             # the attenuation encoder's
LAW_INPUTS = PATH_INPUTS + MEDIUM_INPUTS
PATH_COEFFICIENTS = ("path_loss_at_100m_1ghz_db", "frequency_exponent_db_per_decade",
                     "slope_db_per_decade", "slope_past_bend_db_per_decade",
                     "bend_at_1ghz_log10_m", "bend_sharpness_per_decade", "excess_db_per_km")
MEDIUM_COEFFICIENTS = ("rain_log10_k", "rain_exponent", "gas_db_per_km")
REFERENCE_LOG10_M = 2.0          # the intercept A is the path loss at d3D = 100 m
MIN_LOG10_M, MAX_LOG10_M = 0.5, 5.5  # root bracket (3 m to 316 km), wider than any radius
SECTIONS, SECTION_ROUNDS = 16, 5  # 5 decades / 16^5 = 5e-6 decade (1e-5 of the radius), as 20
#                                  bisection steps, in a quarter of the passes; the Newton step
#                                  after it squares that error
LN10 = math.log(10.0)


def _column(name):
    return FEATURES.index(name)


def qos_from_sinr(sinr_db, implementation_gap_db):
    """the physics page's qos definition (``propagation.qos_score``) in torch;
    log2(1 + 10^(z/10)) as a softplus, which neither overflows nor loses its gradient at high
    SINR."""
    efficiency = F.softplus((sinr_db - implementation_gap_db) * LN10 / 10.0) / math.log(2.0)
    return torch.clamp(efficiency, max=propagation.MAX_SPECTRAL_EFFICIENCY) / \
        propagation.MAX_SPECTRAL_EFFICIENCY


def encoder_bounds(normalizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high), float32 (13,): each feature's training-split min and max in normalised
    units (as ``Normalizer.feature_array`` computes them, so a training row at the edge is not
    moved); ±inf where the stats do not record them (feature stats written before they did)."""
    stats = normalizer.stats["features"]
    low, high = (np.array([stats[c].get(key, default) for c in FEATURES])
                 for key, default in (("min", -np.inf), ("max", np.inf)))
    return tuple(torch.from_numpy(((v - normalizer.feature_mean) / normalizer.feature_std)
                                  .astype(np.float32)) for v in (low, high))


class LawHead(nn.Module):
    """Coefficients → the five normalised targets. Holds the normalisation as buffers (to read
    the physical features back from the normalised inputs) and the physics assumptions."""

    def __init__(self, normalizer, physics_assumptions: dict):
        super().__init__()
        stats = normalizer.stats
        f = lambda key, field: float(stats["features"][key][field])  # noqa: E731
        self.register_buffer("feature_mean", torch.tensor(normalizer.feature_mean,
                                                          dtype=torch.float32))
        self.register_buffer("feature_std", torch.tensor(normalizer.feature_std,
                                                         dtype=torch.float32))
        self.register_buffer("target_mean", torch.tensor(normalizer.target_mean,
                                                         dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(normalizer.target_std,
                                                        dtype=torch.float32))
        # Centre of the intercept: the mean loss P_tx + G − P_rx of the training rows, moved to
        # 100 m and 1 GHz with 30 dB per decade of distance and 20 of frequency; its scale, the
        # spread of received power.
        power = stats["targets"]["received_power_dbm"]
        mean_loss = f("tx_power_dbm", "mean") + f("antenna_gain_dbi", "mean") - power["mean"]
        self.intercept_centre = (mean_loss - 30.0 * (f("distance_m", "mean") - REFERENCE_LOG10_M)
                                 - 20.0 * f("frequency_ghz", "mean"))
        self.intercept_scale = float(power["std"])
        self.edge_sinr_db = float(physics_assumptions["edge_sinr_db"])
        self.gap_db = float(physics_assumptions["implementation_gap_db"])
        self.path_columns = [_column(c) for c in PATH_INPUTS]
        self.medium_columns = [_column(c) for c in MEDIUM_INPUTS]
        low, high = encoder_bounds(normalizer)
        # not in the state dict: they follow from the checkpoint's feature stats
        self.register_buffer("path_low", low[self.path_columns], persistent=False)
        self.register_buffer("path_high", high[self.path_columns], persistent=False)
        self.register_buffer("medium_low", low[self.medium_columns], persistent=False)
        self.register_buffer("medium_high", high[self.medium_columns], persistent=False)

    # -- physical features from normalised inputs -------------------------------------------
    def _physical(self, x, name):
        i = _column(name)
        v = x[:, i] * self.feature_std[i] + self.feature_mean[i]
        # log10 features stay in log10 (the law works in decades); rain comes back from log1p
        return torch.expm1(v) if FEATURE_TRANSFORMS.get(name) == "log1p" else v

    def path_inputs(self, x):
        """The normalised columns the path-loss encoder sees: heights, scenario, LOS, clamped
        to the training range."""
        return torch.clamp(x[:, self.path_columns], self.path_low, self.path_high)

    def medium_inputs(self, x):
        """The normalised columns the attenuation encoder sees: frequency, water vapour,
        clamped to the training range."""
        return torch.clamp(x[:, self.medium_columns], self.medium_low, self.medium_high)

    def coefficients(self, path_raw, medium_raw) -> dict:
        """The laws' coefficients from the encoders' raw outputs, (batch, 7) and (batch, 3)."""
        p, m = path_raw.unbind(dim=1), medium_raw.unbind(dim=1)
        per_decade = 1.0 / math.log(2.0)  # softplus(0) = ln 2: each slope starts at its value
        return {
            "intercept": self.intercept_centre + self.intercept_scale * p[0],
            "frequency_exponent": 20.0 * per_decade * F.softplus(p[1]),
            "slope": 20.0 * per_decade * F.softplus(p[2]),
            "slope_past_bend": 35.0 * per_decade * F.softplus(p[3]),
            "bend_at_1ghz": 2.5 + p[4],
            "sharpness": 2.0 + 20.0 * F.softplus(p[5]),
            "excess": 0.5 * F.softplus(p[6] - 2.0),
            "rain_log10_k": -1.5 + m[0],
            "rain_exponent": 0.05 + F.softplus(m[1] + 0.5),
            "gas": 0.5 * F.softplus(m[2] - 2.0),
        }

    def loss_db(self, c, log10_d2d, log10_f, height_diff_m, rain_mmh):
        """Total median loss at 2-D distance 10^log10_d2d m and frequency 10^log10_f GHz:
        PL(d3D, f) + (excess + k·R^a + γ)·d3D[km], where PL is the log-distance law with a
        frequency exponent (the ABG form) bent at a breakpoint proportional to frequency."""
        return self.distance_law(c, log10_f, height_diff_m, rain_mmh)(log10_d2d)

    def distance_law(self, c, log10_f, height_diff_m, rain_mmh):
        """``loss_db`` as a function of log10 d2D alone: what does not depend on distance is
        computed once (the radius solver evaluates the law many times per link). The
        returned function takes (batch,) or (batch, k) distances (k per link)."""
        def per_link(v):
            return v[:, None]

        rain = torch.where(rain_mmh > 0,
                           torch.exp(c["rain_exponent"] * torch.log(rain_mmh.clamp(min=1e-12))),
                           torch.zeros_like(rain_mmh))
        specific_per_m = (c["excess"] + 10.0 ** c["rain_log10_k"] * rain + c["gas"]) / 1000.0
        at_reference = (c["intercept"] + c["frequency_exponent"] * log10_f
                        - c["slope"] * REFERENCE_LOG10_M)
        bend_at, sharpness = c["bend_at_1ghz"] + log10_f, c["sharpness"]
        slope, extra_slope = c["slope"], c["slope_past_bend"] - c["slope"]
        height_sq = height_diff_m ** 2
        terms = (specific_per_m, at_reference, bend_at, sharpness, slope, extra_slope, height_sq)

        def loss(log10_d2d):
            s, a, b, k, n1, dn, h2 = terms if log10_d2d.dim() == 1 else map(per_link, terms)
            d3d = torch.sqrt(10.0 ** (2.0 * log10_d2d) + h2)
            x = torch.log10(d3d)
            return a + n1 * x + dn * (F.softplus(k * (x - b)) / k) + s * d3d
        return loss

    def forward(self, x, path_raw, medium_raw):
        """Normalised targets (batch, 5) of the links ``x`` (normalised features) under the
        encoders' raw coefficients."""
        c = self.coefficients(path_raw, medium_raw)
        log10_d = self._physical(x, "distance_m")
        log10_f = self._physical(x, "frequency_ghz")
        height_diff = self._physical(x, "bs_height_m") - self._physical(x, "ue_height_m")
        rain = self._physical(x, "rain_rate_mmh").clamp(min=0.0)
        budget_db = self._physical(x, "tx_power_dbm") + self._physical(x, "antenna_gain_dbi")
        noise_db = (-174.0 + 10.0 * (self._physical(x, "bandwidth_mhz") + 6.0)
                    + self._physical(x, "noise_figure_db")
                    + 10.0 / LN10 * F.softplus(self._physical(x, "inr_db") * LN10 / 10.0))

        power = budget_db - self.loss_db(c, log10_d, log10_f, height_diff, rain)
        sinr = power - noise_db
        log10_radius = self._radius(c, budget_db - noise_db - self.edge_sinr_db, log10_f,
                                    height_diff, rain, self._physical(x, "scenario"))
        radius = (10.0 ** log10_radius - RADIUS_OFFSET_M).clamp(min=0.0)
        log10_area = torch.log10(math.pi * radius ** 2 / 1e6 + AREA_OFFSET_KM2)
        columns = {"received_power_dbm": power, "sinr_db": sinr,
                   "coverage_radius_m": log10_radius, "coverage_area_km2": log10_area,
                   "qos_score": qos_from_sinr(sinr, self.gap_db)}
        y = torch.stack([columns[t] for t in TARGETS], dim=1)
        return (y - self.target_mean) / self.target_std

    def _radius(self, c, allowed_loss_db, log10_f, height_diff, rain, scenario):
        """log10(radius + 1 m) of the median-SINR edge, censored like the data."""
        law = self.distance_law(c, log10_f, height_diff, rain)
        allowed = allowed_loss_db[:, None]

        def excess(log10_d):
            return law(log10_d) - (allowed if log10_d.dim() == 2 else allowed_loss_db)

        with torch.no_grad():
            # Section search: each round splits every link's bracket into SECTIONS equal parts
            # and keeps the one where the (monotone) excess changes sign.
            fractions = torch.arange(1, SECTIONS, dtype=allowed.dtype,
                                     device=allowed.device) / SECTIONS
            lo, width = torch.full_like(allowed, MIN_LOG10_M), MAX_LOG10_M - MIN_LOG10_M
            for _ in range(SECTION_ROUNDS):
                below = (excess(lo + width * fractions) <= 0).sum(dim=1, keepdim=True)
                lo, width = lo + below * (width / SECTIONS), width / SECTIONS
            root = (lo + 0.5 * width)[:, 0]
            step = 1e-3
            slope = ((excess(root + step) - excess(root - step)) / (2 * step)).clamp(min=1e-3)
        # One Newton step: the same value, and the root's gradient with respect to the laws.
        root = root - excess(root) / slope
        d_max = torch.where(scenario.round() == propagation.RMA,
                            float(propagation.MAX_DISTANCE_M[propagation.RMA]),
                            float(propagation.MAX_DISTANCE_M[propagation.UMA]))
        min_log10 = math.log10(propagation.MIN_DISTANCE_M)
        censored = torch.where(root < min_log10, torch.zeros_like(root),
                               torch.minimum(10.0 ** root, d_max))
        hard = torch.log10(censored + RADIUS_OFFSET_M)
        return root + (hard - root).detach()  # censored value, the root's gradient


class LawHeaded:
    """What a law-headed backbone shares (mixed into a CoverageModel that sets ``path`` and
    ``medium``, its two encoders, and ``law``, a LawHead): the encoders read their inputs, the
    law head turns their raw coefficients into the five normalised targets."""

    def raw_coefficients(self, x):
        """(path, medium) raw coefficients of the normalised links ``x``."""
        return self.path(self.law.path_inputs(x)), self.medium(self.law.medium_inputs(x))

    def forward(self, x):
        return self.law(x, *self.raw_coefficients(x))


def laws(model, features: pd.DataFrame) -> pd.DataFrame:
    """The coefficients of the laws ``model`` (a law-headed backbone) learned for each link of
    ``features`` (columns: FEATURES), in physical units, one column per coefficient."""
    check_features(features)
    x = model.normalizer.features(features)
    with torch.inference_mode():
        c = model.law.coefficients(*model.raw_coefficients(x))
    # ``coefficients`` returns them in the order of PATH_COEFFICIENTS + MEDIUM_COEFFICIENTS
    return pd.DataFrame({name: v.double().numpy() for name, v in
                         zip(PATH_COEFFICIENTS + MEDIUM_COEFFICIENTS, c.values())},
                        index=features.index)
