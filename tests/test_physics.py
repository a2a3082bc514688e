"""Tests of coverage_lib.physics against independent references (the book's physics page,
book/physics.md).

References used, never the code under test:
- ITU-R P.838-3 and P.676 Annex 1 through the ``itur`` package (ITU-Rpy), element by element;
- 3GPP TR 38.901 Tables 7.4.1-1 and 7.4.2-1, evaluated by hand below with ``math``;
- closed forms of the link budget (noise floor, SINR, QoS, coverage radius where it exists).
"""
import math

import numpy as np
import pytest
from itur.models import itu676, itu838

from coverage_lib.datasets import dataset
from coverage_lib.core import schema
from coverage_lib.physics import propagation

C = 299_792_458.0  # speed of light, m/s
UMA, UMI, RMA = 0, 1, 2
D_MAX = {UMA: 5000.0, UMI: 5000.0, RMA: 10000.0}
log10 = math.log10


def d3(d2d, h_bs, h_ut):
    return math.sqrt(d2d ** 2 + (h_bs - h_ut) ** 2)


def urban_bp(f_ghz, h_bs, h_ut):
    """38.901 note 1: d'BP = 4 h'BS h'UT fc / c, effective heights h − 1 m."""
    return 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * f_ghz * 1e9 / C


def rma_bp(f_ghz, h_bs, h_ut):
    """38.901 note 5: dBP = 2π hBS hUT fc / c."""
    return 2.0 * math.pi * h_bs * h_ut * f_ghz * 1e9 / C


def rma_pl1(d, f):
    """38.901 RMa PL1 with h = 5 m: 20 log(40π d f/3) + min(0.03h^1.72,10) log d
    − min(0.044h^1.72, 14.77) + 0.002 log(h) d."""
    h = 5.0
    return (20 * log10(40 * math.pi * d * f / 3) + min(0.03 * h ** 1.72, 10) * log10(d)
            - min(0.044 * h ** 1.72, 14.77) + 0.002 * log10(h) * d)


def itur_kh_alpha(f_ghz):
    """(k_H, α_H) from ITU-Rpy, one scalar frequency at a time (θ = 0, τ = 0 → horizontal)."""
    k, alpha = itu838.rain_specific_attenuation_coefficients(float(f_ghz), 0.0, 0.0)
    return float(k), float(alpha)


def itur_gamma_gas(f_ghz, rho):
    """γ_o + γ_w of P.676 Annex 1 (line by line) at 1013.25 hPa, 288.15 K, dB/km."""
    return float(itu676.gamma_exact(float(f_ghz), 1013.25, float(rho), 288.15).value)


# ============================================================================================
# ITU-R P.838-3: rain
# ============================================================================================

@pytest.mark.parametrize("f_ghz, k_h, alpha_h", [
    (10.0, 0.01217, 1.2571),
    (28.0, 0.2051, 0.9679),
    (60.0, 0.8606, 0.7656),
])
def test_p838_spec_check_values(f_ghz, k_h, alpha_h):
    k, alpha = propagation.rain_coefficients(f_ghz)
    # to the printed digits: within half a unit of the last printed decimal
    k_decimals = len(repr(k_h).split(".")[1])
    a_decimals = len(repr(alpha_h).split(".")[1])
    assert abs(float(k) - k_h) <= 0.5 * 10.0 ** -k_decimals
    assert abs(float(alpha) - alpha_h) <= 0.5 * 10.0 ** -a_decimals


def test_p838_against_itur_random_points():
    rng = np.random.default_rng(838)
    f = np.exp(rng.uniform(np.log(1.0), np.log(100.0), 50))
    rain = rng.uniform(0.1, 150.0, 50)
    k, alpha = propagation.rain_coefficients(f)
    gamma = propagation.rain_specific_attenuation_db_per_km(f, rain)
    ref = np.array([itur_kh_alpha(fi) for fi in f])
    ref_gamma = ref[:, 0] * rain ** ref[:, 1]
    np.testing.assert_allclose(k, ref[:, 0], rtol=1e-3, atol=0)
    np.testing.assert_allclose(alpha, ref[:, 1], rtol=1e-3, atol=0)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-3, atol=0)


@pytest.mark.parametrize("f_ghz", [0.5, 0.7, 0.999])
def test_p838_clamps_below_1_ghz(f_ghz):
    k, alpha = propagation.rain_coefficients(f_ghz)
    k1, alpha1 = propagation.rain_coefficients(1.0)
    assert float(k) == float(k1) and float(alpha) == float(alpha1)
    ref_k, ref_alpha = itur_kh_alpha(1.0)
    assert float(k) == pytest.approx(ref_k, rel=1e-3)
    assert float(alpha) == pytest.approx(ref_alpha, rel=1e-3)
    assert float(propagation.rain_specific_attenuation_db_per_km(f_ghz, 25.0)) == \
        pytest.approx(ref_k * 25.0 ** ref_alpha, rel=1e-3)


@pytest.mark.parametrize("f_ghz, rain", [(10.0, 0.0), (28.0, 0.0), (3.5, 0.0)])
def test_p838_no_rain_no_attenuation(f_ghz, rain):
    assert float(propagation.rain_specific_attenuation_db_per_km(f_ghz, rain)) == 0.0


def test_p838_broadcasts():
    f = np.array([[1.0], [10.0], [60.0]])
    rain = np.array([1.0, 10.0, 100.0])
    gamma = propagation.rain_specific_attenuation_db_per_km(f, rain)
    assert gamma.shape == (3, 3)
    for i in range(3):
        k, a = itur_kh_alpha(f[i, 0])
        np.testing.assert_allclose(gamma[i], k * rain ** a, rtol=1e-3)


# ============================================================================================
# ITU-R P.676 Annex 1: gas (shipped table, bilinear)
# ============================================================================================

def _gas_points():
    rng = np.random.default_rng(676)
    f = np.concatenate([
        np.exp(rng.uniform(np.log(0.5), np.log(100.0), 140)),
        rng.uniform(21.5, 23.0, 20),     # 22.235 GHz water-vapour line
        rng.uniform(55.0, 66.0, 30),     # 60 GHz oxygen complex
        [0.5, 22.235, 60.0, 100.0, 99.99, 0.5001, 22.2, 22.3, 57.5, 62.5],
    ])
    rho = np.concatenate([rng.uniform(0.0, 25.0, f.size - 10),
                          [0.0, 7.5, 25.0, 12.3, 0.0, 25.0, 25.0, 0.1, 3.3, 24.9]])
    return f, rho


def test_gas_table_against_itur_gamma_exact():
    f, rho = _gas_points()
    assert f.size >= 200
    got = propagation.gas_specific_attenuation_db_per_km(f, rho)
    ref = np.array([itur_gamma_gas(fi, ri) for fi, ri in zip(f, rho)])
    assert np.all(ref > 0)
    np.testing.assert_allclose(got, ref, rtol=0.02, atol=0)


def test_gas_table_nodes_are_itur_values():
    """At the grid nodes bilinear interpolation returns the table: it must be itur's value."""
    f_grid, rho_grid, _ = propagation.gas_table()
    rng = np.random.default_rng(1)
    fi = rng.choice(f_grid, 25)
    ri = rng.choice(rho_grid, 25)
    got = propagation.gas_specific_attenuation_db_per_km(fi, ri)
    ref = np.array([itur_gamma_gas(a, b) for a, b in zip(fi, ri)])
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_gas_table_grid_as_specified():
    f_grid, rho_grid, gamma = propagation.gas_table()
    assert f_grid[0] == pytest.approx(0.5) and f_grid[-1] == pytest.approx(100.0)
    assert np.max(np.diff(f_grid)) <= 0.1 + 1e-9
    assert rho_grid[0] == 0.0 and rho_grid[-1] == pytest.approx(25.0)
    assert gamma.shape == (f_grid.size, rho_grid.size)


@pytest.mark.parametrize("f_ghz, rho, name", [
    (0.4, 7.5, "frequency_ghz"),
    (100.5, 7.5, "frequency_ghz"),
    (np.array([10.0, 150.0]), 7.5, "frequency_ghz"),
    (10.0, -0.1, "water_vapour_gm3"),
    (10.0, 25.5, "water_vapour_gm3"),
    (10.0, np.array([1.0, 30.0]), "water_vapour_gm3"),
])
def test_gas_out_of_table_raises(f_ghz, rho, name):
    with pytest.raises(ValueError, match=name):
        propagation.gas_specific_attenuation_db_per_km(f_ghz, rho)


@pytest.mark.parametrize("f_ghz, rho", [(0.5, 0.0), (100.0, 25.0), (0.5, 25.0), (100.0, 0.0)])
def test_gas_table_edges_accepted(f_ghz, rho):
    got = float(propagation.gas_specific_attenuation_db_per_km(f_ghz, rho))
    assert got == pytest.approx(itur_gamma_gas(f_ghz, rho), rel=0.02)


# ============================================================================================
# 3GPP TR 38.901 Table 7.4.1-1: path loss, by hand
# ============================================================================================
# Each row: id, scenario, los, d2D (m), f (GHz), hBS, hUT, side of the breakpoint that the
# 2-D distance lies on ("before"/"after"), expected PL (dB, by hand), expected σ_SF (dB).

PATH_LOSS_CASES = [
    # UMa LOS, d'BP = 4·24·0.5·3.5e9/c ≈ 560 m
    ("UMa LOS before BP", UMA, 1, 100.0, 3.5, 25.0, 1.5, "before",
     28 + 22 * log10(d3(100, 25, 1.5)) + 20 * log10(3.5), 4.0),
    ("UMa LOS after BP", UMA, 1, 1000.0, 3.5, 25.0, 1.5, "after",
     28 + 40 * log10(d3(1000, 25, 1.5)) + 20 * log10(3.5)
     - 9 * log10(urban_bp(3.5, 25, 1.5) ** 2 + (25 - 1.5) ** 2), 4.0),
    ("UMa LOS after BP, tall UE", UMA, 1, 4000.0, 0.8, 25.0, 12.0, "after",
     28 + 40 * log10(d3(4000, 25, 12)) + 20 * log10(0.8)
     - 9 * log10(urban_bp(0.8, 25, 12) ** 2 + (25 - 12) ** 2), 4.0),
    # UMa NLOS = max(UMa LOS, 13.54 + 39.08 log d3D + 20 log f − 0.6 (hUT − 1.5))
    ("UMa NLOS", UMA, 0, 300.0, 28.0, 25.0, 1.5, "before",
     max(28 + 22 * log10(d3(300, 25, 1.5)) + 20 * log10(28.0),
         13.54 + 39.08 * log10(d3(300, 25, 1.5)) + 20 * log10(28.0) - 0.6 * (1.5 - 1.5)), 6.0),
    ("UMa NLOS, hUT 17 m", UMA, 0, 4500.0, 0.7, 25.0, 17.0, "after",
     max(28 + 40 * log10(d3(4500, 25, 17)) + 20 * log10(0.7)
         - 9 * log10(urban_bp(0.7, 25, 17) ** 2 + (25 - 17) ** 2),
         13.54 + 39.08 * log10(d3(4500, 25, 17)) + 20 * log10(0.7) - 0.6 * (17 - 1.5)), 6.0),
    ("UMa NLOS, LOS branch of max", UMA, 0, 10.0, 3.5, 25.0, 22.5, "before",
     28 + 22 * log10(d3(10, 25, 22.5)) + 20 * log10(3.5), 6.0),
    # UMi LOS, d'BP = 4·9·0.5·3.5e9/c ≈ 210 m
    ("UMi LOS before BP", UMI, 1, 50.0, 3.5, 10.0, 1.5, "before",
     32.4 + 21 * log10(d3(50, 10, 1.5)) + 20 * log10(3.5), 4.0),
    ("UMi LOS after BP", UMI, 1, 1000.0, 3.5, 10.0, 1.5, "after",
     32.4 + 40 * log10(d3(1000, 10, 1.5)) + 20 * log10(3.5)
     - 9.5 * log10(urban_bp(3.5, 10, 1.5) ** 2 + (10 - 1.5) ** 2), 4.0),
    # UMi NLOS = max(UMi LOS, 35.3 log d3D + 22.4 + 21.3 log f − 0.3 (hUT − 1.5))
    ("UMi NLOS", UMI, 0, 200.0, 3.5, 10.0, 1.5, "before",
     max(32.4 + 21 * log10(d3(200, 10, 1.5)) + 20 * log10(3.5),
         35.3 * log10(d3(200, 10, 1.5)) + 22.4 + 21.3 * log10(3.5) - 0.3 * (1.5 - 1.5)), 7.82),
    ("UMi NLOS, hUT 10 m, 60 GHz", UMI, 0, 150.0, 60.0, 10.0, 10.0, "before",
     max(32.4 + 21 * log10(d3(150, 10, 10)) + 20 * log10(60.0),
         35.3 * log10(d3(150, 10, 10)) + 22.4 + 21.3 * log10(60.0) - 0.3 * (10 - 1.5)), 7.82),
    # RMa LOS, dBP = 2π·35·1.5·3.5e9/c ≈ 3851 m
    ("RMa LOS before BP", RMA, 1, 1000.0, 3.5, 35.0, 1.5, "before",
     rma_pl1(d3(1000, 35, 1.5), 3.5), 4.0),
    ("RMa LOS after BP", RMA, 1, 6000.0, 3.5, 35.0, 1.5, "after",
     rma_pl1(rma_bp(3.5, 35, 1.5), 3.5)
     + 40 * log10(d3(6000, 35, 1.5) / rma_bp(3.5, 35, 1.5)), 6.0),
    # 2-D vs 3-D: dBP = 2π·150·1·0.5e9/c ≈ 1572 m; d2D = dBP − 5 m but d3D ≈ dBP + 2 m:
    # 38.901 compares the 2-D distance, so PL1(d3D) and σ 4 apply.
    ("RMa LOS, d2D < dBP < d3D", RMA, 1, rma_bp(0.5, 150, 1) - 5.0, 0.5, 150.0, 1.0, "before",
     rma_pl1(d3(rma_bp(0.5, 150, 1) - 5.0, 150, 1), 0.5), 4.0),
    ("RMa LOS, just after BP", RMA, 1, rma_bp(0.5, 150, 1) + 5.0, 0.5, 150.0, 1.0, "after",
     rma_pl1(rma_bp(0.5, 150, 1), 0.5)
     + 40 * log10(d3(rma_bp(0.5, 150, 1) + 5.0, 150, 1) / rma_bp(0.5, 150, 1)), 6.0),
    # RMa NLOS = max(RMa LOS, 161.04 − 7.1 log W + 7.5 log h − (24.37 − 3.7 (h/hBS)²) log hBS
    #            + (43.42 − 3.1 log hBS)(log d3D − 3) + 20 log f − (3.2 (log 11.75 hUT)² − 4.97))
    ("RMa NLOS", RMA, 0, 2000.0, 3.5, 35.0, 1.5, "before",
     max(rma_pl1(d3(2000, 35, 1.5), 3.5),
         161.04 - 7.1 * log10(20) + 7.5 * log10(5) - (24.37 - 3.7 * (5 / 35) ** 2) * log10(35)
         + (43.42 - 3.1 * log10(35)) * (log10(d3(2000, 35, 1.5)) - 3) + 20 * log10(3.5)
         - (3.2 * log10(11.75 * 1.5) ** 2 - 4.97)), 8.0),
    ("RMa NLOS, tall BS, 20 GHz", RMA, 0, 8000.0, 20.0, 120.0, 8.0, "before",
     max(rma_pl1(d3(8000, 120, 8), 20.0),
         161.04 - 7.1 * log10(20) + 7.5 * log10(5) - (24.37 - 3.7 * (5 / 120) ** 2) * log10(120)
         + (43.42 - 3.1 * log10(120)) * (log10(d3(8000, 120, 8)) - 3) + 20 * log10(20.0)
         - (3.2 * log10(11.75 * 8) ** 2 - 4.97)), 8.0),
]


@pytest.mark.parametrize(
    "scenario, los, d2d, f, h_bs, h_ut, side, expected_pl, expected_sigma",
    [case[1:] for case in PATH_LOSS_CASES], ids=[case[0] for case in PATH_LOSS_CASES])
def test_path_loss_by_hand(scenario, los, d2d, f, h_bs, h_ut, side, expected_pl,
                           expected_sigma):
    bp = rma_bp(f, h_bs, h_ut) if scenario == RMA else urban_bp(f, h_bs, h_ut)
    assert (d2d <= bp) == (side == "before")  # the case lies where its name says
    pl, sigma = propagation.path_loss_db(*(np.array([v]) for v in (scenario, los, d2d, f, h_bs,
                                                                h_ut)))
    assert pl.shape == sigma.shape == (1,)
    assert float(pl[0]) == pytest.approx(expected_pl, abs=1e-9)
    assert float(sigma[0]) == expected_sigma


@pytest.mark.parametrize("case", PATH_LOSS_CASES[:2] + PATH_LOSS_CASES[-2:],
                         ids=lambda c: c[0])
def test_path_loss_accepts_python_scalars(case):
    """physics.md: path_loss_db is numpy-vectorised, so plain scalars broadcast to 0-d."""
    scenario, los, d2d, f, h_bs, h_ut = case[1:7]
    pl, sigma = propagation.path_loss_db(scenario, los, d2d, f, h_bs, h_ut)
    assert np.ndim(pl) == 0 and np.ndim(sigma) == 0
    assert float(pl) == pytest.approx(case[8], abs=1e-9)
    assert float(sigma) == case[9]


def test_path_loss_vectorised_matches_scalar_cases():
    cols = list(zip(*[case[1:7] for case in PATH_LOSS_CASES]))
    scenario, los, d2d, f, h_bs, h_ut = (np.array(c) for c in cols)
    pl, sigma = propagation.path_loss_db(scenario, los, d2d, f, h_bs, h_ut)
    np.testing.assert_allclose(pl, [case[8] for case in PATH_LOSS_CASES], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(sigma, [case[9] for case in PATH_LOSS_CASES])


@pytest.mark.parametrize("scenario, f, h_bs, h_ut", [
    (UMA, 3.5, 25.0, 1.5), (UMA, 28.0, 25.0, 20.0), (UMI, 3.5, 10.0, 1.5),
    (UMI, 0.6, 10.0, 22.5), (RMA, 3.5, 35.0, 1.5), (RMA, 0.5, 150.0, 1.0)])
def test_breakpoint_distance_by_hand(scenario, f, h_bs, h_ut):
    expected = rma_bp(f, h_bs, h_ut) if scenario == RMA else urban_bp(f, h_bs, h_ut)
    assert float(propagation.breakpoint_distance_m(scenario, f, h_bs, h_ut)) == \
        pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scenario, los, d2d, h_bs, h_ut, f, sigma", [
    (UMA, 1, 4999.0, 25.0, 1.5, 0.5, 4.0), (UMA, 0, 50.0, 25.0, 1.5, 3.5, 6.0),
    (UMI, 1, 4999.0, 10.0, 1.5, 0.5, 4.0), (UMI, 0, 50.0, 10.0, 1.5, 3.5, 7.82),
    (RMA, 1, 100.0, 35.0, 1.5, 3.5, 4.0), (RMA, 1, 9000.0, 35.0, 1.5, 3.5, 6.0),
    (RMA, 0, 100.0, 35.0, 1.5, 3.5, 8.0), (RMA, 0, 9000.0, 35.0, 1.5, 3.5, 8.0),
])
def test_shadow_fading_sigma(scenario, los, d2d, h_bs, h_ut, f, sigma):
    _, got = propagation.path_loss_db(*(np.array([v]) for v in (scenario, los, d2d, f, h_bs, h_ut)))
    assert float(got[0]) == sigma


# --- monotonicity of basic path loss ---------------------------------------------------------

MONOTONE_CONFIGS = [
    (UMA, 25.0, 1.5), (UMA, 25.0, 12.0), (UMA, 25.0, 22.5),
    (UMI, 10.0, 1.5), (UMI, 10.0, 12.0), (UMI, 10.0, 22.5),
    (RMA, 10.0, 1.0), (RMA, 35.0, 1.5), (RMA, 150.0, 1.0), (RMA, 150.0, 10.0),
]


@pytest.mark.parametrize("los", [1, 0])
@pytest.mark.parametrize("scenario, h_bs, h_ut", MONOTONE_CONFIGS)
def test_path_loss_non_decreasing_in_distance(scenario, h_bs, h_ut, los):
    d = np.geomspace(10.0, D_MAX[scenario], 3000)
    freqs = [0.5, 3.5, 30.0] if scenario == RMA else [0.5, 3.5, 28.0, 100.0]
    for f in freqs:
        pl, _ = propagation.path_loss_db(scenario, los, d, f, h_bs, h_ut)
        assert np.all(np.isfinite(pl))
        assert np.all(np.diff(pl) >= 0.0), (f, float(np.min(np.diff(pl))))


@pytest.mark.parametrize("los", [1, 0])
@pytest.mark.parametrize("scenario, h_bs, h_ut", MONOTONE_CONFIGS)
def test_path_loss_increasing_in_frequency(scenario, h_bs, h_ut, los):
    """Strictly increasing in f. One exception, the standard's own: for RMa LOS the
    breakpoint dBP ∝ f sweeps past a fixed d2D, switching PL2 → PL1(d3D); where d3D > d2D
    that switch can step down (see the next test), so RMa LOS is checked on each side."""
    f = np.geomspace(0.5, 30.0 if scenario == RMA else 100.0, 3000)
    for d in [10.0, 100.0, 1000.0, D_MAX[scenario]]:
        pl, _ = propagation.path_loss_db(scenario, los, d, f, h_bs, h_ut)
        assert np.all(np.isfinite(pl))
        if scenario == RMA and los == 1:
            before = d <= np.array([rma_bp(fi, h_bs, h_ut) for fi in f])
            for side in (before, ~before):
                assert np.all(np.diff(pl[side]) > 0.0), (d, float(np.min(np.diff(pl[side]))))
        else:
            assert np.all(np.diff(pl) > 0.0), (d, float(np.min(np.diff(pl))))


def test_rma_los_frequency_step_at_breakpoint_crossing():
    """Documented property of 38.901 (not of this code): with hBS = 150 m, hUT = 1 m and
    d2D = 2000 m, raising f past f* (dBP(f*) = d2D) switches from PL2 = PL1(d2D) +
    40 log(d3D/d2D) to PL1(d3D) = PL1(d2D) + b1 log(d3D/d2D) + e1 (d3D − d2D): a step down of
    (40 − b1) log(d3D/d2D) − e1 (d3D − d2D) ≈ 0.0146 dB. Basic path loss is therefore *not*
    strictly increasing in frequency everywhere in RMa LOS (physics.md says it is)."""
    h_bs, h_ut, d = 150.0, 1.0, 2000.0
    f_star = d * C / (2 * math.pi * h_bs * h_ut * 1e9)
    b1 = 20 + min(0.03 * 5 ** 1.72, 10)
    e1 = 0.002 * log10(5)
    dd = d3(d, h_bs, h_ut)
    expected_step = -((40 - b1) * log10(dd / d) - e1 * (dd - d))
    pl, _ = propagation.path_loss_db(RMA, 1, d, np.array([f_star * (1 - 1e-12),
                                                      f_star * (1 + 1e-12)]), h_bs, h_ut)
    assert pl[1] - pl[0] == pytest.approx(expected_step, abs=1e-6)
    assert -0.02 < expected_step < -0.01


# ============================================================================================
# 3GPP TR 38.901 Table 7.4.2-1: LOS probability, by hand
# ============================================================================================

def c_prime(h_ut):
    return 0.0 if h_ut <= 13 else ((h_ut - 13) / 10) ** 1.5


LOS_CASES = [
    ("UMa d<=18", UMA, 15.0, 1.5, 1.0),
    ("UMa d=18", UMA, 18.0, 22.5, 1.0),
    ("UMa d=100 hUT=1.5", UMA, 100.0, 1.5, 18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100)),
    ("UMa d=100 hUT=13 (C'=0)", UMA, 100.0, 13.0, 18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100)),
    ("UMa d=100 hUT=20", UMA, 100.0, 20.0,
     (18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100))
     * (1 + ((20 - 13) / 10) ** 1.5 * 5 / 4 * (100 / 100) ** 3 * math.exp(-100 / 150))),
    ("UMa d=300 hUT=22.5", UMA, 300.0, 22.5,
     (18 / 300 + math.exp(-300 / 63) * (1 - 18 / 300))
     * (1 + ((22.5 - 13) / 10) ** 1.5 * 5 / 4 * (300 / 100) ** 3 * math.exp(-300 / 150))),
    ("UMa d=2000 hUT=16", UMA, 2000.0, 16.0,
     (18 / 2000 + math.exp(-2000 / 63) * (1 - 18 / 2000))
     * (1 + ((16 - 13) / 10) ** 1.5 * 5 / 4 * (2000 / 100) ** 3 * math.exp(-2000 / 150))),
    ("UMi d<=18", UMI, 18.0, 1.5, 1.0),
    ("UMi d=100", UMI, 100.0, 1.5, 18 / 100 + math.exp(-100 / 36) * (1 - 18 / 100)),
    ("UMi d=100 tall UE (no hUT term)", UMI, 100.0, 22.5,
     18 / 100 + math.exp(-100 / 36) * (1 - 18 / 100)),
    ("UMi d=1000", UMI, 1000.0, 5.0, 18 / 1000 + math.exp(-1000 / 36) * (1 - 18 / 1000)),
    ("RMa d<=10", RMA, 10.0, 1.5, 1.0),
    ("RMa d=1010", RMA, 1010.0, 1.5, math.exp(-1.0)),
    ("RMa d=5000", RMA, 5000.0, 10.0, math.exp(-(5000 - 10) / 1000)),
]


@pytest.mark.parametrize("scenario, d, h_ut, expected", [c[1:] for c in LOS_CASES],
                         ids=[c[0] for c in LOS_CASES])
def test_los_probability_by_hand(scenario, d, h_ut, expected):
    assert float(propagation.los_probability(scenario, d, h_ut)) == pytest.approx(expected,
                                                                              rel=1e-12)


@pytest.mark.parametrize("scenario", [UMA, UMI, RMA])
def test_los_probability_is_a_probability(scenario):
    d = np.geomspace(10.0, D_MAX[scenario], 500)[:, None]
    h = np.linspace(1.0, 22.5, 44)[None, :]
    p = propagation.los_probability(scenario, d, h)
    assert p.shape == (500, 44)
    assert np.all(p >= 0)
    # 38.901's UMa formula with C'(hUT) exceeds 1 just beyond 18 m for hUT > 13 m
    # (at d = 18+ the first factor is 1 and the C' factor is > 1): it must be capped at 1.
    worst = np.unravel_index(np.argmax(p), p.shape)
    assert np.all(p <= 1), (f"P_LOS = {p.max()!r} at d = {d[worst[0], 0]:.3f} m, "
                            f"hUT = {h[0, worst[1]]:.2f} m")


# ============================================================================================
# Link budget on generated data: identities and the oracle columns
# ============================================================================================

@pytest.fixture(scope="module")
def generated():
    return dataset.generate(20_000, seed=12345)


def noise_dbm(df):
    return -174.0 + 10 * np.log10(df["bandwidth_mhz"].to_numpy() * 1e6) \
        + df["noise_figure_db"].to_numpy()


def interference_db(df):
    return 10 * np.log10(1 + 10 ** (df["inr_db"].to_numpy() / 10))


def d_max_of(df):
    return np.where(df["scenario"].to_numpy() == RMA, 10000.0, 5000.0)


def test_area_is_pi_r_squared(generated):
    r = generated["coverage_radius_m"].to_numpy()
    np.testing.assert_allclose(generated["coverage_area_km2"], math.pi * r ** 2 / 1e6,
                               rtol=1e-14, atol=0)


@pytest.mark.parametrize("sinr_col, power_col", [
    ("sinr_db", "received_power_dbm"),
    ("sinr_median_db", "received_power_median_dbm")])
def test_sinr_identity(generated, sinr_col, power_col):
    expected = generated[power_col].to_numpy() - noise_dbm(generated) - interference_db(generated)
    np.testing.assert_allclose(generated[sinr_col], expected, rtol=0, atol=1e-9)


def test_qos_identity(generated):
    sinr = generated["sinr_db"].to_numpy()
    expected = np.minimum(np.log2(1 + 10 ** ((sinr - 3) / 10)), 7.4063) / 7.4063
    q = generated["qos_score"].to_numpy()
    np.testing.assert_allclose(q, expected, rtol=0, atol=1e-12)
    assert np.all((q >= 0) & (q <= 1))
    assert np.any(q == 1.0) and np.any(q < 0.01)  # the cap and the low end are both exercised


def test_shadowing_identity(generated):
    for col, median in [("received_power_dbm", "received_power_median_dbm"),
                        ("sinr_db", "sinr_median_db")]:
        np.testing.assert_allclose(generated[col] - generated[median],
                                   -generated["shadowing_db"], rtol=0, atol=1e-9)


def test_shadow_sigma_column_by_table(generated):
    g = generated
    s, los, d = g["scenario"].to_numpy(), g["los"].to_numpy(), g["distance_m"].to_numpy()
    bp = 2 * np.pi * g["bs_height_m"].to_numpy() * g["ue_height_m"].to_numpy() \
        * g["frequency_ghz"].to_numpy() * 1e9 / C
    expected = np.where(los == 1, np.where((s == RMA) & (d > bp), 6.0, 4.0),
                        np.choose(s, [6.0, 7.82, 8.0]))
    np.testing.assert_array_equal(g["shadow_sigma_db"], expected)


def test_radius_within_zero_and_d_max(generated):
    r = generated["coverage_radius_m"].to_numpy()
    assert np.all(r >= 0.0)
    over = r - d_max_of(generated)
    assert np.all(over <= 0.0), f"radius exceeds d_max by up to {over.max()!r} m"
    uncensored = ~generated["radius_censored"].to_numpy()
    assert np.all(r[uncensored] >= 10.0)


def test_radius_censored_exactly_at_zero_or_d_max(generated):
    r = generated["coverage_radius_m"].to_numpy()
    at_edge = (r == 0.0) | (r == d_max_of(generated))
    np.testing.assert_array_equal(generated["radius_censored"].to_numpy(), at_edge)
    assert at_edge.any()


def test_median_received_power_independently(generated):
    """tx + gain − PL₃₈.₉₀₁ − (γ_rain + γ_gas)·d3D[km], with the two γ checked against itur above."""
    g = generated
    pl, _ = propagation.path_loss_db(g["scenario"], g["los"], g["distance_m"], g["frequency_ghz"],
                                 g["bs_height_m"], g["ue_height_m"])
    gamma = propagation.rain_specific_attenuation_db_per_km(g["frequency_ghz"], g["rain_rate_mmh"]) \
        + propagation.gas_specific_attenuation_db_per_km(g["frequency_ghz"], g["water_vapour_gm3"])
    d3d = np.sqrt(g["distance_m"] ** 2 + (g["bs_height_m"] - g["ue_height_m"]) ** 2)
    expected = g["tx_power_dbm"] + g["antenna_gain_dbi"] - pl - gamma * d3d / 1000
    np.testing.assert_allclose(g["received_power_median_dbm"], expected, rtol=0, atol=1e-9)


def test_link_budget_reproduces_generated_medians(generated):
    lb = propagation.link_budget(generated[schema.FEATURES])
    pairs = [("received_power_dbm", "received_power_median_dbm"),
             ("sinr_db", "sinr_median_db"), ("coverage_radius_m", "coverage_radius_m"),
             ("coverage_area_km2", "coverage_area_km2"), ("shadow_sigma_db", "shadow_sigma_db"),
             ("radius_censored", "radius_censored")]
    for lb_col, gen_col in pairs:
        np.testing.assert_array_equal(lb[lb_col].to_numpy(), generated[gen_col].to_numpy(),
                                      err_msg=lb_col)
    sinr = lb["sinr_db"].to_numpy()
    np.testing.assert_allclose(
        lb["qos_score"], np.minimum(np.log2(1 + 10 ** ((sinr - 3) / 10)), 7.4063) / 7.4063,
        rtol=0, atol=1e-12)


# ============================================================================================
# Coverage radius: bisection against closed forms and the −6 dB edge
# ============================================================================================

def _closed_form_links(scenario, n_wanted, seed):
    """Random UMa/UMi LOS links with rain = gas = 0 whose radius, from the closed form
    log10 d3D = (budget − A − 20 log f + 6)/B (before the breakpoint), lies in (10 m, min(d'BP,
    d_max))."""
    a, b, h_bs = (28.0, 22.0, 25.0) if scenario == UMA else (32.4, 21.0, 10.0)
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n_wanted:
        f = math.exp(rng.uniform(math.log(0.5), math.log(100.0)))
        h_ut = rng.uniform(1.5, 22.5)
        tx = rng.uniform(30.0, 49.0)
        gain = rng.uniform(0.0, 25.0)
        bw = float(rng.choice([5, 10, 20, 40, 50, 100, 200, 400]))
        nf = rng.uniform(5.0, 13.0)
        inr = rng.uniform(-10.0, 20.0)
        noise = -174 + 10 * log10(bw * 1e6) + nf
        budget = tx + gain - noise - 10 * log10(1 + 10 ** (inr / 10))
        d3d = 10 ** ((budget - a - 20 * log10(f) + 6) / b)
        if d3d <= abs(h_bs - h_ut):
            continue
        d2d = math.sqrt(d3d ** 2 - (h_bs - h_ut) ** 2)
        if 10.0 * 1.01 < d2d < 0.99 * min(urban_bp(f, h_bs, h_ut), 5000.0):
            rows.append((f, h_bs, h_ut, budget, d2d))
    return np.array(rows)


@pytest.mark.parametrize("scenario", [UMI, UMA])
def test_coverage_radius_matches_closed_form(scenario):
    links = _closed_form_links(scenario, 30, seed=7 + scenario)
    f, h_bs, h_ut, budget, expected = links.T
    seg = propagation._path_loss_segments(scenario, 1, f, h_bs, h_ut)
    radius, censored = propagation.coverage_radius_m(seg, budget, 0.0, 5000.0, edge_sinr_db=-6)
    assert not np.any(censored)
    np.testing.assert_allclose(radius, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("budget, expected", [(400.0, "d_max"), (-100.0, 0.0)])
@pytest.mark.parametrize("scenario, h_bs, d_max", [(UMA, 25.0, 5000.0), (UMI, 10.0, 5000.0),
                                                   (RMA, 35.0, 10000.0)])
def test_coverage_radius_censoring(scenario, h_bs, d_max, budget, expected):
    seg = propagation._path_loss_segments(np.array([scenario]), np.array([0]), np.array([3.5]),
                                      np.array([h_bs]), np.array([1.5]))
    radius, censored = propagation.coverage_radius_m(seg, np.array([budget]), 0.0,
                                                 np.array([d_max]))
    assert bool(censored[0])
    assert float(radius[0]) == (d_max if expected == "d_max" else 0.0)


def test_median_sinr_is_minus_6_db_at_the_radius(generated):
    """With rain and gas: recompute the median SINR at the returned radius independently
    (path_loss_db + P.838 + P.676 attenuation over d3D); it is ≥ −6 dB there and < −6 dB
    1e-6 beyond; where the model is continuous in d (UMa, UMi) it equals −6 dB."""
    g = generated[~generated["radius_censored"]]
    assert len(g) > 1000

    def median_sinr(d2d):
        pl, _ = propagation.path_loss_db(g["scenario"], g["los"], d2d, g["frequency_ghz"],
                                     g["bs_height_m"], g["ue_height_m"])
        gamma = propagation.rain_specific_attenuation_db_per_km(g["frequency_ghz"],
                                                            g["rain_rate_mmh"]) \
            + propagation.gas_specific_attenuation_db_per_km(g["frequency_ghz"],
                                                         g["water_vapour_gm3"])
        d3d = np.sqrt(d2d ** 2 + (g["bs_height_m"] - g["ue_height_m"]) ** 2)
        return (g["tx_power_dbm"] + g["antenna_gain_dbi"] - pl - gamma * d3d / 1000
                - noise_dbm(g) - interference_db(g)).to_numpy()

    r = g["coverage_radius_m"].to_numpy()
    at_r = median_sinr(r)
    beyond = median_sinr(r * (1 + 1e-6))
    assert np.all(at_r >= -6.0 - 1e-9)
    assert np.all(beyond < -6.0)
    urban = g["scenario"].to_numpy() != RMA
    assert np.max(np.abs(at_r[urban] + 6.0)) < 1e-4
    assert (g["rain_rate_mmh"] > 0).mean() > 0.3  # rain is really exercised
