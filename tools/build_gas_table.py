"""Rebuild coverage_lib/physics/p676_gas_sea_level.npz from ITU-R P.676 Annex 1 (line-by-line).

The generator interpolates this table bilinearly instead of calling ``itur`` (element-wise
and far too slow for 10⁶ rows). Grid: 0.5–100 GHz in 0.05 GHz steps × 0–25 g/m³ in 0.5 g/m³
steps; total specific attenuation γ_o + γ_w at 1013.25 hPa and 288.15 K, in dB/km.

    python tools/build_gas_table.py        # needs the `test` extra (itur)
"""
from pathlib import Path

import numpy as np
from itur.models import itu676

PRESSURE_HPA = 1013.25
TEMPERATURE_K = 288.15
OUT = Path(__file__).resolve().parents[1] / "coverage_lib" / "physics" / "p676_gas_sea_level.npz"


def build():
    frequency_ghz = np.round(np.arange(0.5, 100.0 + 1e-9, 0.05), 4)
    water_vapour_gm3 = np.arange(0.0, 25.0 + 1e-9, 0.5)
    gamma = np.empty((frequency_ghz.size, water_vapour_gm3.size))
    for j, rho in enumerate(water_vapour_gm3):
        # gamma_exact = gamma0_exact + gammaw_exact (Annex 1, eq. 1): oxygen + water vapour.
        gamma[:, j] = np.asarray(itu676.gamma_exact(frequency_ghz, PRESSURE_HPA, rho,
                                                    TEMPERATURE_K).value, dtype=float)
    tmp = OUT.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, frequency_ghz=frequency_ghz, water_vapour_gm3=water_vapour_gm3,
                        gamma_db_per_km=gamma, pressure_hpa=PRESSURE_HPA,
                        temperature_k=TEMPERATURE_K, p676_version=itu676.get_version())
    tmp.replace(OUT)
    print(f"wrote {OUT} ({frequency_ghz.size}×{water_vapour_gm3.size}, P.676-{itu676.get_version()})")


if __name__ == "__main__":
    build()
