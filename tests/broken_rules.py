"""Edits of a predictor's output that break exactly one physics rule (shared by tests)."""
import numpy as np


def break_rule(rule, f, out):
    """Edit ``out`` (targets predicted for features ``f``) so that ``rule`` is broken."""
    if rule == "power_vs_distance":
        out["received_power_dbm"] += 80 * np.log10(f["distance_m"].to_numpy())
    elif rule == "power_vs_rain":
        out["received_power_dbm"] += 1.0 * f["rain_rate_mmh"].to_numpy()
    elif rule == "radius_vs_distance":
        out["coverage_radius_m"] = 0.5 * f["distance_m"].to_numpy()
    elif rule == "radius_vs_tx_power":
        out["coverage_radius_m"] = 5000.0 - 50 * f["tx_power_dbm"].to_numpy()
    elif rule == "radius_vs_gain":
        out["coverage_radius_m"] = 3000.0 - 50 * f["antenna_gain_dbi"].to_numpy()
    elif rule == "area_identity":
        out["coverage_area_km2"] *= 1.5
    elif rule == "sinr_identity":
        out["sinr_db"] += 3.0
    elif rule == "qos_identity":
        out["qos_score"] = 0.5 * out["qos_score"]
    elif rule == "qos_range":
        out["qos_score"] = out["qos_score"] + 0.5
    elif rule == "radius_range":
        out["coverage_radius_m"] = out["coverage_radius_m"] * 3 + 100
    else:
        raise ValueError(f"no edit for rule {rule!r}")
    return out
