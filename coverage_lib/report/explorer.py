"""The book's live explorer: the Selector's two backbones and its gates, exported for a forward
pass in the reader's browser (``explorer_web/explorer_core.js``, run by the page
``explorer_web/explorer.js``), with no server and no kernel.

``write_assets(data_dir, folder)`` reads the run's checkpoints (the registry's primary and
backup, loaded as ``Selector.from_checkpoints`` loads them: weights only, checked against the
data set and the saved thresholds) and writes five files:

- ``model.json``: what the page needs besides the weights — the 13 features (label, unit, the
  physical domain a slider spans, the training domain the Selector's ``out_of_domain`` gate
  uses, a default link), the feature and target transforms, each backbone's normalisation and
  layer list, the law head's constants, the physics identities' constants, and the Selector
  (its reasons, its rules and their routing tolerances, the confidence gate's trees as flat
  arrays, its score threshold);
- ``weights.bin``: every tensor as little-endian float32, one after the other (``model.json``
  gives each one's offset and shape);
- ``explorer_core.js``, ``explorer.js`` and ``explorer.css``: the page's code, copied from
  ``explorer_web/``. ``explorer_core.js`` holds the numerics (the forward passes, the law
  head, the noise and QoS definitions, the rules' excesses, the cascade) and no DOM: the page
  and Node (the unit test ``tests/test_explorer_parity.py``) load the same file.
  ``explorer.js`` is the page (it loads ``explorer_core.js`` from beside itself).

Every number the library defines reaches the JavaScript through ``model.json``, computed here
from the module that defines it (``constants``): module constants are imported; the law
head's coefficient maps (offset + scale·raw, or offset + scale·softplus(raw + shift)) are
measured from ``LawHead.coefficients`` itself and checked to reproduce it; the few numbers
``law_head.py`` and ``physics/rules.py`` keep inline (the radius solve's Newton step and slope
floor, the rain rate's floor, the area identity's floor) are read from their functions' source
(``_literal``), so a change there moves the page with it or stops the export by name. What
``explorer_core.js`` still writes itself are definitions, not the library's choices: π, ln 2,
ln 10, the decibel (10·log10 of a power ratio), SI prefixes (MHz, km, km²) and log2 in
Shannon's formula.

Why a forward pass written for these two networks and not onnxruntime-web (measured when this
was built): onnxruntime-web 1.23's smallest WebAssembly runtime is 11.9 MB
(``ort-wasm-simd-threaded.wasm``) plus its JavaScript, against 2.2 MB of weights and about
40 kB of code here; the book is about 20 MB and may weigh 30. The networks are small and fixed
(an MLP of LayerNorm/SiLU layers; Mamba-3 token encoders whose scan runs in its recurrent form
over six tokens; the law head's closed forms and radius solve), so their forward pass is short,
and it computes in float64 from the float32 weights: its answers agree with ``predict``'s to
float32's rounding (the browser test compares 20 links to 1e-4 relative;
tests/test_explorer_parity.py runs ``explorer_core.js`` in Node on 56, out-of-domain ones
among them, against ``predict`` and ``route`` at the same tolerance).
"""
from __future__ import annotations

import inspect
import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np

from ..core import domain, paths
from ..core.io import atomic_write_bytes, atomic_write_text
from ..core.schema import FEATURES, TARGETS
from ..datasets import dataset
from ..evaluation.selector import CASCADE_RULES, REASONS, Selector
from ..models import registry
from ..models.law_head import (MAX_LOG10_M, MEDIUM_COEFFICIENTS, MIN_LOG10_M,
                               PATH_COEFFICIENTS, REFERENCE_LOG10_M, SECTION_ROUNDS, SECTIONS,
                               LawHead)
from ..models.mlp import CoverageMLP
from ..models.mamba_backbone import CoverageMamba3
from ..models import normalization
from ..models.normalization import (AREA_OFFSET_KM2, FEATURE_TRANSFORMS, RADIUS_OFFSET_M,
                                    TARGET_TRANSFORMS)
from ..physics import propagation, rules

EXPLORER_FORMAT = "d2tl-coverage-explorer/2"  # 2: constants from the library
WEB = Path(__file__).with_name("explorer_web")
CODE_FILES = ("explorer_core.js", "explorer.js", "explorer.css")
ASSET_FILES = ("model.json", "weights.bin", *CODE_FILES)
UNITS = {"frequency_ghz": "GHz", "distance_m": "m", "bs_height_m": "m", "ue_height_m": "m",
         "tx_power_dbm": "dBm", "antenna_gain_dbi": "dBi", "bandwidth_mhz": "MHz",
         "noise_figure_db": "dB", "rain_rate_mmh": "mm/h", "water_vapour_gm3": "g/m³",
         "scenario": "", "los": "", "inr_db": "dB"}
NAMES = {"frequency_ghz": "frequency", "distance_m": "distance", "bs_height_m": "BS height",
         "ue_height_m": "UE height", "tx_power_dbm": "transmit power",
         "antenna_gain_dbi": "antenna gain", "bandwidth_mhz": "bandwidth",
         "noise_figure_db": "noise figure", "rain_rate_mmh": "rain rate",
         "water_vapour_gm3": "water vapour", "scenario": "scenario", "los": "line of sight",
         "inr_db": "interference (INR)"}
TARGET_LABELS = {"received_power_dbm": ("received power", "dBm"), "sinr_db": ("SINR", "dB"),
                 "coverage_radius_m": ("coverage radius", "m"),
                 "coverage_area_km2": ("coverage area", "km²"), "qos_score": ("QoS score", "")}
LOG_SCALE = ("frequency_ghz", "distance_m", "bandwidth_mhz")


class _Tensors:
    """Tensors gathered into one float32 buffer; ``add`` returns the reference model.json
    keeps: {"t": [offset in floats, *shape]}."""

    def __init__(self):
        self.parts, self.size = [], 0

    def add(self, tensor) -> list:
        values = np.ascontiguousarray(np.asarray(tensor.detach().cpu() if hasattr(tensor, "detach")
                                                 else tensor, dtype="<f4"))
        ref = [self.size, *values.shape]
        self.parts.append(values.ravel())
        self.size += values.size
        return {"t": ref}

    def to_bytes(self) -> bytes:
        return np.concatenate(self.parts).astype("<f4").tobytes() if self.parts else b""


def _normalizer(model) -> dict:
    n = model.normalizer
    return {"feature_mean": n.feature_mean.tolist(), "feature_std": n.feature_std.tolist(),
            "target_mean": n.target_mean.tolist(), "target_std": n.target_std.tolist()}


def _mlp_layers(net, tensors: _Tensors) -> list:
    """An ``mlp.network`` Sequential as a layer list (Linear, LayerNorm, SiLU; eval mode, so
    Dropout is the identity)."""
    import torch.nn as nn

    layers = []
    for module in net:
        if isinstance(module, nn.Linear):
            layers.append({"type": "linear", "weight": tensors.add(module.weight),
                           "bias": tensors.add(module.bias)})
        elif isinstance(module, nn.LayerNorm):
            layers.append({"type": "layernorm", "weight": tensors.add(module.weight),
                           "bias": tensors.add(module.bias), "eps": module.eps})
        elif isinstance(module, nn.SiLU):
            layers.append({"type": "silu"})
        elif not isinstance(module, nn.Dropout):
            raise ValueError(f"the explorer's MLP takes Linear, LayerNorm, SiLU and Dropout "
                             f"layers; got {type(module).__name__}")
    return layers


def _rms_eps(norm) -> float:
    """An RMSNorm's eps as torch applies it (None: float32's machine epsilon)."""
    return float(norm.eps) if norm.eps is not None else float(np.finfo(np.float32).eps)


def _mamba3(mixer, tensors: _Tensors) -> dict:
    if mixer.ngroups != 1:
        raise ValueError(f"the explorer's Mamba-3 takes one B/C group; got {mixer.ngroups}")
    return {"d_inner": mixer.d_inner, "d_state": mixer.d_state, "nheads": mixer.nheads,
            "headdim": mixer.headdim, "n_angles": mixer.num_rope_angles,
            "A_floor": mixer.A_floor, "split": list(mixer.split_sizes),
            "in_proj": tensors.add(mixer.in_proj.weight), "dt_bias": tensors.add(mixer.dt_bias),
            "B_bias": tensors.add(mixer.B_bias.reshape(mixer.nheads, mixer.d_state)),
            "C_bias": tensors.add(mixer.C_bias.reshape(mixer.nheads, mixer.d_state)),
            "B_norm": tensors.add(mixer.B_norm.weight), "B_eps": _rms_eps(mixer.B_norm),
            "C_norm": tensors.add(mixer.C_norm.weight), "C_eps": _rms_eps(mixer.C_norm),
            "D": tensors.add(mixer.D), "out_proj": tensors.add(mixer.out_proj.weight)}


def _token_encoder(encoder, tensors: _Tensors) -> dict:
    return {"embed_weight": tensors.add(encoder.embed_weight),
            "embed_bias": tensors.add(encoder.embed_bias),
            "layers": [{"norm": tensors.add(layer.norm.weight), "eps": _rms_eps(layer.norm),
                        "forward": _mamba3(layer.forward_scan, tensors),
                        "backward": (_mamba3(layer.backward_scan, tensors)
                                     if layer.backward_scan is not None else None)}
                       for layer in encoder.layers],
            "norm": tensors.add(encoder.norm.weight), "eps": _rms_eps(encoder.norm),
            "head": _mlp_layers(encoder.head, tensors)}


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _literal(function, pattern: str) -> float:
    """The number written at ``?`` in the one place ``function``'s source reads ``pattern``
    (whitespace ignored): for the few numbers the library keeps inline rather than as named
    constants, so that the page takes them from where they are defined. Found other than once
    → ValueError naming the function."""
    source = re.sub(r"\s+", "", textwrap.dedent(inspect.getsource(function)))
    head, _, tail = re.sub(r"\s+", "", pattern).partition("?")
    found = re.findall(re.escape(head) + f"({_NUMBER})" + re.escape(tail), source)
    if len(found) != 1:
        raise ValueError(f"the explorer reads the number in {pattern!r} from "
                         f"{function.__module__}.{function.__qualname__}, which holds it "
                         f"{len(found)} times: update coverage_lib/report/explorer.py and "
                         f"explorer_web/explorer_core.js to the changed code")
    return float(found[0])


def law_coefficients(law) -> list[dict]:
    """The law head's coefficient maps as ``LawHead.coefficients`` computes them, each one
    {"name", "encoder" ("path"/"medium"), "input" (the raw output it reads), "form"
    ("linear": offset + scale·raw; "softplus": offset + scale·softplus(raw + shift)),
    "offset", "scale", "shift"}, in the order of PATH_COEFFICIENTS + MEDIUM_COEFFICIENTS.

    Measured from the method itself in float64 (so its numbers are typed once, in
    law_head.py) and checked to reproduce it on random raw outputs: a coefficient of another
    form → ValueError."""
    import torch

    sizes = {"path": len(PATH_COEFFICIENTS), "medium": len(MEDIUM_COEFFICIENTS)}

    def at(values: dict) -> dict:   # {(encoder, input): raw} -> {coefficient: value}
        raw = {e: torch.zeros(1, n, dtype=torch.float64) for e, n in sizes.items()}
        for (e, i), v in values.items():
            raw[e][0, i] = v
        with torch.no_grad():
            return {k: float(v[0]) for k, v in law.coefficients(raw["path"], raw["medium"]).items()}

    base = at({})
    names = list(base)
    inputs = {}
    for e, n in sizes.items():
        for i in range(n):
            moved = at({(e, i): 1.0})
            for name in names:
                if moved[name] != base[name]:
                    if name in inputs:
                        raise ValueError(f"LawHead.coefficients' {name!r} reads more than one "
                                         f"raw output: update coverage_lib/report/explorer.py "
                                         f"and explorer_web/explorer_core.js")
                    inputs[name] = (e, i)
    maps = []
    for name in names:
        if name not in inputs:
            raise ValueError(f"LawHead.coefficients' {name!r} reads no raw output")
        e, i = inputs[name]
        c = lambda v: at({(e, i): v})[name]  # noqa: E731
        if abs(c(-1.0) + c(1.0) - 2.0 * c(0.0)) <= 1e-12 * (1.0 + abs(c(0.0))):
            form, offset, scale, shift = "linear", c(0.0), c(1.0) - c(0.0), 0.0
        else:
            # softplus(v) is 0 far below 0 and v itself past torch's threshold (20); the
            # shift is softplus⁻¹ of the value at 0
            form, offset = "softplus", c(-1e4)
            scale = (c(1024.0) - c(64.0)) / 960.0
            shift = float(np.log(np.expm1((c(0.0) - offset) / scale)))
        maps.append({"name": name, "encoder": e, "input": i, "form": form,
                     "offset": offset, "scale": scale, "shift": shift})
    rng = np.random.default_rng(0)
    for _ in range(8):
        raw = {e: rng.normal(0.0, 3.0, n) for e, n in sizes.items()}
        want = at({(e, i): v for e, values in raw.items() for i, v in enumerate(values)})
        for m in maps:
            r = raw[m["encoder"]][m["input"]]
            got = m["offset"] + m["scale"] * (r if m["form"] == "linear"
                                              else np.logaddexp(0.0, r + m["shift"]))
            if not abs(got - want[m["name"]]) <= 1e-9 * (1.0 + abs(want[m["name"]])):
                raise ValueError(f"LawHead.coefficients' {m['name']!r} is neither offset + "
                                 f"scale·raw nor offset + scale·softplus(raw + shift): update "
                                 f"coverage_lib/report/explorer.py and "
                                 f"explorer_web/explorer_core.js")
    return maps


def _law(law) -> dict:
    return {"coefficients": law_coefficients(law),
            "edge_sinr_db": law.edge_sinr_db, "gap_db": law.gap_db,
            "path_columns": law.path_columns, "medium_columns": law.medium_columns,
            "path_low": law.path_low.tolist(), "path_high": law.path_high.tolist(),
            "medium_low": law.medium_low.tolist(), "medium_high": law.medium_high.tolist(),
            "reference_log10_m": REFERENCE_LOG10_M, "min_log10_m": MIN_LOG10_M,
            "max_log10_m": MAX_LOG10_M, "sections": SECTIONS, "rounds": SECTION_ROUNDS,
            "newton_step_log10_m": _literal(LawHead._radius, "step = ?"),
            "newton_min_slope": _literal(LawHead._radius, ").clamp(min=?)"),
            "rain_floor_mmh": _literal(LawHead.distance_law, "rain_mmh.clamp(min=?)")}


def _backbone(key: str, model, tensors: _Tensors) -> dict:
    entry = registry.BACKBONES[key]
    out = {"key": key, "label": entry.name, "colour": entry.colour,
           "normalizer": _normalizer(model),
           "implementation_gap_db": model.physics_assumptions["implementation_gap_db"]}
    if isinstance(model, CoverageMLP):
        return {**out, "kind": "mlp", "layers": _mlp_layers(model.net, tensors)}
    if isinstance(model, CoverageMamba3):
        return {**out, "kind": "mamba3_law", "law": _law(model.law),
                "path": _token_encoder(model.path, tensors),
                "medium": _token_encoder(model.medium, tensors)}
    raise ValueError(f"the explorer runs CoverageMLP and CoverageMamba3 in the browser; "
                     f"{key!r} is a {type(model).__name__}")


def _target_transform(kind: str | None) -> dict | None:
    """A target transform of ``normalization`` as the page applies it: log10(max(v, 0) +
    offset), checked against ``normalization.forward_transform``."""
    if kind is None:
        return None
    offset = {"log10_radius": RADIUS_OFFSET_M, "log10_area": AREA_OFFSET_KM2}.get(kind)
    probe = np.array([-1.0, 0.0, 0.5, 3.0, 1234.5])
    if offset is None or not np.allclose(normalization.forward_transform(kind, probe),
                                         np.log10(np.maximum(probe, 0.0) + offset),
                                         rtol=1e-15, atol=0):
        raise ValueError(f"the explorer applies target transforms as log10(max(v, 0) + offset); "
                         f"{kind!r} is not one: update coverage_lib/report/explorer.py and "
                         f"explorer_web/explorer_core.js")
    return {"kind": "log10_offset", "offset": offset}


def constants() -> dict:
    """The library's numbers the page's computations need besides a model's own (model.json's
    "transforms", "physics" and "numerics"), each from the module that defines it."""
    import torch

    feature_kinds = [FEATURE_TRANSFORMS.get(name) for name in FEATURES]
    unknown = sorted({k for k in feature_kinds if k not in (None, "log10", "log1p")})
    if unknown:
        raise ValueError(f"the explorer applies the feature transforms log10 and log1p; "
                         f"normalization.FEATURE_TRANSFORMS has {unknown}: update "
                         f"coverage_lib/report/explorer.py and explorer_web/explorer_core.js")
    softplus = torch.nn.Softplus()   # what F.softplus computes by default
    return {
        "transforms": {"features": feature_kinds,
                       "targets": [_target_transform(TARGET_TRANSFORMS.get(t)) for t in TARGETS]},
        "physics": {"max_distance_m": {str(k): float(v) for k, v in
                                       propagation.MAX_DISTANCE_M.items()},
                    "rma": int(domain.RMA), "uma": int(domain.UMA),
                    "min_distance_m": float(propagation.MIN_DISTANCE_M),
                    "max_spectral_efficiency": propagation.MAX_SPECTRAL_EFFICIENCY,
                    # N = this + 10·log10(B / 1 MHz) + NF
                    "thermal_noise_dbm_1mhz": float(propagation.thermal_noise_dbm(1.0, 0.0)),
                    "radius_offset_m": RADIUS_OFFSET_M, "area_offset_km2": AREA_OFFSET_KM2,
                    "area_floor_km2": _literal(rules.excess_array, "np.maximum(area, ?)")},
        "numerics": {"softplus_beta": float(softplus.beta),
                     "softplus_threshold": float(softplus.threshold)},
    }


def flat_trees(booster) -> list[dict]:
    """A LightGBM regression model's trees as flat arrays: per tree ``feature``, ``threshold``,
    ``left``, ``right`` (a child ≥ 0 is a split, −k − 1 the leaf k) and ``value`` (the leaves).
    Only numerical ``<=`` splits (what the gate's continuous inputs give) are taken."""
    model = booster.dump_model()
    if model["num_tree_per_iteration"] != 1 or model.get("average_output"):
        raise ValueError("the explorer evaluates one summed regression tree per round")
    trees = []
    for info in model["tree_info"]:
        tree = {"feature": [], "threshold": [], "left": [], "right": [], "value": []}

        def visit(node) -> int:
            if "leaf_value" in node or "split_feature" not in node:
                tree["value"].append(float(node["leaf_value"]))
                return -len(tree["value"])
            if node["decision_type"] != "<=" or node["missing_type"] not in ("None", "NaN"):
                raise ValueError(f"the explorer evaluates numerical '<=' splits only; got "
                                 f"{node['decision_type']!r} (missing {node['missing_type']!r})")
            i = len(tree["feature"])
            for key in ("feature", "threshold", "left", "right"):
                tree[key].append(None)
            tree["feature"][i] = int(node["split_feature"])
            tree["threshold"][i] = float(node["threshold"])
            tree["left"][i] = visit(node["left_child"])
            tree["right"][i] = visit(node["right_child"])
            return i

        visit(info["tree_structure"])
        trees.append(tree)
    return trees


def tree_scores(trees: list[dict], x: np.ndarray) -> np.ndarray:
    """The sum of ``flat_trees``' leaves for each row of ``x`` (what the page computes)."""
    out = np.zeros(len(x))
    for r, row in enumerate(np.asarray(x, dtype=float)):
        for tree in trees:
            node = 0 if tree["feature"] else -1
            while node >= 0:
                node = tree["left"][node] if row[tree["feature"][node]] <= \
                    tree["threshold"][node] else tree["right"][node]
            out[r] += tree["value"][-node - 1]
    return out


def _features(selector: Selector) -> list[dict]:
    default = domain.reference_links(3.5).iloc[0]
    out = []
    for name in FEATURES:
        low, high = domain.DOMAIN[name]
        item = {"name": name, "label": NAMES[name], "unit": UNITS[name],
                "low": float(low), "high": float(high),
                "trained": [float(v) for v in selector.domain[name]],
                "default": float(default[name]), "scale": "log" if name in LOG_SCALE else "linear"}
        if name == "scenario":
            item["options"] = [[code, label] for code, label in domain.SCENARIO_NAMES.items()]
        elif name == "los":
            item["options"] = [[0, "NLOS"], [1, "LOS"]]
        elif name == "bandwidth_mhz":
            item["options"] = [[b, f"{b:g} MHz"] for b in domain.BANDWIDTHS_MHZ]
        out.append(item)
    return out


def bundle(selector: Selector, provenance: dict | None = None) -> tuple[dict, bytes]:
    """(model.json's content, weights.bin's bytes) for a fitted Selector."""
    if selector.thresholds is None:
        raise ValueError("the explorer needs the Selector's thresholds (its confidence gate)")
    extra = [r for r in selector.rules if r not in CASCADE_RULES]
    if extra:
        raise ValueError(f"the explorer judges the answer-only rules {list(CASCADE_RULES)}; "
                         f"this Selector also uses {extra}")
    tensors = _Tensors()
    keys = selector.keys
    models = {keys[0]: _backbone(keys[0], selector.primary, tensors),
              keys[1]: _backbone(keys[1], selector.backup, tensors)}
    threshold = selector.thresholds["score_threshold"]
    payload = {
        "format": EXPLORER_FORMAT, **(provenance or {}), "checkpoints": selector.fingerprint,
        "features": _features(selector),
        "targets": [{"name": t, "label": TARGET_LABELS[t][0], "unit": TARGET_LABELS[t][1]}
                    for t in TARGETS],
        **constants(),
        "models": models,
        "selector": {"primary": keys[0], "backup": keys[1], "reasons": list(REASONS),
                     "rules": list(selector.rules),
                     "tolerances": {r: selector.tolerances[r] for r in selector.rules},
                     "tolerance": selector.thresholds["tolerance"],
                     "score_threshold": threshold,
                     "gate": flat_trees(selector.gate.booster)},
        "weights": {"file": "weights.bin", "dtype": "float32-le", "count": tensors.size},
    }
    return payload, tensors.to_bytes()


def load_selector(data_dir) -> Selector:
    """The run's Selector with its saved thresholds, as the evaluation loaded it."""
    primary, backup = registry.by_role("primary"), registry.by_role("backup")
    return Selector.from_checkpoints(
        primary.checkpoint_path(data_dir), backup.checkpoint_path(data_dir),
        data_manifest_sha256=dataset.identity(paths.dataset_dir(data_dir)),
        thresholds_path=paths.resolve(data_dir) / "results" / "selector_thresholds.json")


def write_assets(data_dir, folder, provenance: dict | None = None) -> dict:
    """The explorer's files (``ASSET_FILES``) for the run in ``data_dir``, written atomically
    into ``folder``; returns {file name: bytes}."""
    payload, weights = bundle(load_selector(data_dir), provenance)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "weights.bin", weights)
    atomic_write_text(folder / "model.json", json.dumps(payload, separators=(",", ":"),
                                                        allow_nan=False))
    for name in CODE_FILES:
        shutil.copyfile(WEB / name, folder / name)
    return {name: (folder / name).stat().st_size for name in ASSET_FILES}

