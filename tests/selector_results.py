"""A synthetic ``metrics.json`` of the cascade (``result_files``' schema, only the Selector's
parts: routing, selector, frontier, risk_coverage, gates, the latency rows the book quotes) for
the report's tests."""
import numpy as np

from coverage_lib.core.schema import OOD_SPLITS
from coverage_lib.models import registry

TOLERANCES = (1.0, 0.3, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.0)
SPLITS = ("test", *OOD_SPLITS)


def _point(label, kind, tolerance, share, speed, default=False, offset=0.0):
    """A point whose errors fall from the primary's to the backup's as the share grows."""
    return {"label": label, "kind": kind, "tolerance": tolerance, "default": default,
            "validation_to_backup": None if tolerance is None else share,
            "splits": {s: {"to_backup": share if s == "test" else 1.0,
                           "received_power_dbm": 0.30 - 0.1 * share + offset + 0.2 * (s != "test"),
                           "coverage_radius_m": 30.0 - 10.0 * share + 100 * offset,
                           "rows_per_s": speed * (1.0 if s == "test" else 0.2)}
                       for s in SPLITS}}


def frontier() -> dict:
    names = registry.display_names()
    pairs = {}
    for j, primary in enumerate(("mlp", "mlp_law")):
        shares = np.linspace(0.05, 0.6, len(TOLERANCES))  # looser tolerance, fewer rows routed
        points = [_point(f"{names[primary]} only", "primary_only", None, 0.0, 2e6,
                         offset=0.01 * j)]
        points += [_point(f"tolerance {t:g}", "cascade", t, float(share), 2e6 / (1 + 9 * share),
                          default=(primary == "mlp" and t == 0.01), offset=0.01 * j)
                   for t, share in zip(TOLERANCES, shares)]
        points.append(_point(f"{names['mamba3']} only", "backup_only", None, 1.0, 2e5))
        pairs[primary] = {"primary": primary, "backup": "mamba3", "points": points}
    return {"default_tolerance": 0.01, "splits": list(SPLITS), "pairs": pairs}


def risk_coverage() -> dict:
    share = np.linspace(0, 1, 21)
    return {"pair": "mlp", "split": "test", "to_backup": share.tolist(),
            "gate": {"received_power_dbm": (0.30 - 0.08 * share).tolist(),
                     "coverage_radius_m": (30 - 8 * share).tolist()},
            "oracle": {"received_power_dbm": (0.30 - 0.15 * np.sqrt(share)
                                              + 0.05 * share).tolist(),
                       "coverage_radius_m": (30 - 15 * np.sqrt(share) + 5 * share).tolist()}}


def gates() -> list:
    return [{"gate": "primary pass", "what": "the primary's predict_array", "us_per_row": 0.5,
             "test_share": None},
            {"gate": "out_of_domain", "what": "a feature outside the training domain",
             "us_per_row": 0.01, "test_share": 0.0},
            {"gate": "physics_rule: area_identity, qos_range",
             "what": "identities and ranges, read off the answer", "us_per_row": 0.2,
             "test_share": 0.003},
            {"gate": "low_confidence", "what": "the confidence gate's trees", "us_per_row": 1.5,
             "test_share": 0.12},
            {"gate": "backup pass", "what": "the backup's predict_array", "us_per_row": 20.0,
             "test_share": None}]


def routing(to_backup: float = 0.125) -> dict:
    return {s: {"rows": 1000, "to_primary": 1 - to_backup if s == "test" else 0.0,
                "to_backup": to_backup if s == "test" else 1.0, "backup_rows": 125,
                "reasons": {"out_of_domain": 0.0 if s == "test" else 1.0,
                            "physics_rule": 0.005 if s == "test" else 0.0,
                            "low_confidence": to_backup - 0.005 if s == "test" else 0.0}}
            for s in SPLITS}


def latency() -> list:
    names = registry.display_names()
    mlp, backup = names["mlp"], names["mamba3"]
    rows = [(mlp, "network, eager", 4096, 1e6), (backup, "predict_array", 4096, 1e5),
            ("Selector", "predict_array", 4096, 5e5)]
    out = [{"model": m, "variant": v, "batch": b, "median_ms": 4096e3 / r, "rows_per_s": r}
           for m, v, b, r in rows]
    for who, ms in ((mlp, 0.2), (backup, 3.0)):
        out.append({"model": "Selector", "variant": f"predict_array, a link the {who} answers",
                    "batch": 1, "median_ms": ms, "rows_per_s": 1e3 / ms})
    return out


def results(score_threshold=0.42) -> dict:
    return {"routing": routing(), "frontier": frontier(), "risk_coverage": risk_coverage(),
            "gates": gates(), "latency": latency(), "serving": {"bf16_native": False},
            "selector": {"pair": ["mlp", "mamba3"], "rules": ["area_identity", "qos_range"],
                         "routing_tolerances": {"area_identity": 1e-6, "qos_range": 1e-6},
                         "thresholds": {"tolerance": 0.01, "score_threshold": score_threshold,
                                        "scales": {}, "validation_to_backup": 0.11,
                                        "gate_rows": 500, "calibration_rows": 500,
                                        "n_val_rows": 1000, "fitted_on": "val split"}}}
