"""The law head of the backup and its ablation: what holds by construction, what it never calls."""
import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import brentq

from coverage_lib.datasets import dataset
from coverage_lib.physics import propagation, rules
from coverage_lib.training import checkpoint_io, train_config, trainer
from coverage_lib.core.schema import FEATURES
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config
from coverage_lib.models.law_head import encoder_bounds, laws
from coverage_lib.models.mlp import CoverageLawMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer

SMALL_MAMBA = Mamba3Config(d_model=16, d_state=8, n_layers=1, headdim=8)
SMALL_MLP = MLPConfig(width=32, depth=2)
GENERATOR_FORMULAS = ("path_loss_db", "_path_loss_segments", "_evaluate_path_loss",
                      "breakpoint_distance_m", "shadow_fading_sigma_db", "rain_coefficients",
                      "rain_specific_attenuation_db_per_km", "gas_table",
                      "gas_specific_attenuation_db_per_km", "coverage_radius_m", "link_budget")


@pytest.fixture(scope="module")
def frames():
    df = dataset.generate(3000, seed=41)
    return df.iloc[:2400].reset_index(drop=True), df.iloc[2400:].reset_index(drop=True)


def build(kind, train):
    torch.manual_seed(0)
    stats = Normalizer.fit(train).to_dict()
    return CoverageMamba3(stats, SMALL_MAMBA) if kind == "mamba3" else \
        CoverageLawMLP(stats, SMALL_MLP)


@pytest.mark.parametrize("kind", ["mamba3", "mlp_law"])
def test_trains_and_predicts_without_the_generators_propagation_formulas(kind, frames, tmp_path,
                                                                         monkeypatch):
    train, val = frames
    for name in GENERATOR_FORMULAS:
        def refuse(*args, _name=name, **kwargs):
            raise AssertionError(f"the backup called physics.{_name}")
        monkeypatch.setattr(propagation, name, refuse)
    model = build(kind, train)
    result = trainer.train(model, train, val, train_config.TrainConfig(epochs=1, batch_size=256),
                            tmp_path, kind, "best.pth", data_manifest_sha256="m",
                            progress=False, log=lambda *_: None)
    assert np.isfinite(result.history["val_mae"][0])
    out = model.predict(val[FEATURES])
    assert np.isfinite(out.to_numpy()).all()


@pytest.mark.parametrize("kind", ["mamba3", "mlp_law"])
def test_no_monotonicity_violation_by_construction(kind, frames):
    """Untrained, so nothing learnt could hide a violation: received power never rises with
    distance or rain, and the radius never moves with distance, on validation rows and on
    points of the whole domain (out-of-distribution ranges included)."""
    train, val = frames
    model = build(kind, train)
    checked = ("power_vs_distance", "power_vs_rain", "radius_vs_distance")
    for rows in rules.validation_and_domain(val, 600, seed=3).values():
        excess = rules.rule_excess(model.predict, rows, checked)
        assert (excess["power_vs_distance"] <= 1e-9).all()
        assert (excess["power_vs_rain"] <= 1e-9).all()
        assert (excess["radius_vs_distance"] == 0.0).all()


def test_radius_is_the_root_of_the_learned_law(frames):
    """The radius solves median SINR = edge threshold under the coefficients ``laws`` reports,
    checked with an independent root finder (scipy's brentq) on the law written in numpy."""
    train, val = frames
    model = build("mamba3", train).double()
    rows = val.iloc[:60].reset_index(drop=True)
    coefficients = laws(model, rows[FEATURES])
    predicted = model.predict(rows[FEATURES])
    edge = propagation.EDGE_SINR_DB
    checked = 0
    for i, link in rows.iterrows():
        c = coefficients.iloc[i]
        log_f = np.log10(link["frequency_ghz"])
        noise = (propagation.thermal_noise_dbm(link["bandwidth_mhz"], link["noise_figure_db"])
                 + propagation.interference_penalty_db(link["inr_db"]))
        specific = (c["excess_db_per_km"] + 10 ** c["rain_log10_k"]
                    * link["rain_rate_mmh"] ** c["rain_exponent"] + c["gas_db_per_km"])

        def sinr_minus_edge(d):
            d3d = np.hypot(d, link["bs_height_m"] - link["ue_height_m"])
            x = np.log10(d3d)
            k = c["bend_sharpness_per_decade"]
            bend = np.logaddexp(0.0, k * (x - c["bend_at_1ghz_log10_m"] - log_f)) / k
            path_loss = (c["path_loss_at_100m_1ghz_db"]
                         + c["frequency_exponent_db_per_decade"] * log_f
                         + c["slope_db_per_decade"] * (x - 2.0)
                         + (c["slope_past_bend_db_per_decade"] - c["slope_db_per_decade"]) * bend)
            power = link["tx_power_dbm"] + link["antenna_gain_dbi"] - path_loss \
                - specific * d3d / 1000
            return power - noise - edge

        d_max = propagation.max_distance_m(link["scenario"])
        radius = predicted["coverage_radius_m"].iloc[i]
        if sinr_minus_edge(10.0) < 0:
            assert radius == 0.0
        elif sinr_minus_edge(d_max) >= 0:
            assert radius == pytest.approx(d_max, rel=1e-9)
        else:
            # features reach the model as float32 (the normaliser): 1e-5 of the radius
            assert radius == pytest.approx(brentq(sinr_minus_edge, 10.0, d_max), rel=1e-5)
            checked += 1
    assert checked >= 5


def test_ablation_round_trips_through_its_checkpoint(frames, tmp_path):
    train, val = frames
    model = build("mlp_law", train)
    trainer.train(model, train, val, train_config.TrainConfig(epochs=1, batch_size=256), tmp_path,
                   "mlp_law", "best.pth", data_manifest_sha256="m", progress=False,
                   log=lambda *_: None)
    ckpt = checkpoint_io.load_checkpoint(tmp_path / "best.pth", data_manifest_sha256="m")
    assert ckpt["model_class"] == "CoverageLawMLP"
    pd.testing.assert_frame_equal(ckpt["model"].predict(val[FEATURES]),
                                  model.predict(val[FEATURES]), check_exact=True)


@pytest.mark.parametrize("kind", ["mamba3", "mlp_law"])
def test_encoders_see_only_the_training_range(kind, frames):
    """Past the training split's highest frequency the attenuation coefficients are those at
    that frequency (an encoder's output there would be arbitrary) and only the laws carry
    frequency further; inside the range the clamp changes nothing, bit for bit."""
    train, val = frames
    low_band = train[train["frequency_ghz"] <= 30.0].reset_index(drop=True)
    model = build(kind, low_band)
    top = low_band["frequency_ghz"].max()
    links = val[FEATURES].head(8)
    at_top = laws(model, links.assign(frequency_ghz=top))
    beyond = laws(model, links.assign(frequency_ghz=90.0))
    pd.testing.assert_frame_equal(beyond, at_top, check_exact=True)  # every coefficient

    unclamped = copy.deepcopy(model)
    for side, value in (("low", -math.inf), ("high", math.inf)):
        for encoder in ("path", "medium"):
            name = f"{encoder}_{side}"
            setattr(unclamped.law, name, torch.full_like(getattr(model.law, name), value))
    inside = low_band[FEATURES]
    pd.testing.assert_frame_equal(model.predict(inside), unclamped.predict(inside),
                                  check_exact=True)
    far = links.assign(frequency_ghz=90.0)
    assert not np.allclose(laws(unclamped, far)["rain_log10_k"], beyond["rain_log10_k"])
    # the path loss's frequency term still acts past the edge
    assert not np.allclose(model.predict(far)["received_power_dbm"],
                           model.predict(links.assign(frequency_ghz=top))["received_power_dbm"])


def test_feature_stats_without_a_range_clamp_nothing(frames):
    """Feature stats written before they recorded min and max (older checkpoints) leave the
    encoders' inputs as they are."""
    stats = Normalizer.fit(frames[0]).to_dict()
    assert all({"min", "max"} <= set(e) for e in stats["features"].values())
    older = {part: {c: {k: v for k, v in e.items() if k not in ("min", "max")}
                    for c, e in entries.items()} for part, entries in stats.items()}
    low, high = encoder_bounds(Normalizer(older))
    assert torch.isneginf(low).all() and torch.isposinf(high).all()
