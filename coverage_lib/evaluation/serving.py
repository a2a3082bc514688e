"""Serving a backbone outside the training code: an ONNX export run by ONNX Runtime, a frozen
TorchScript graph, and the accuracy cost of reduced precision.

Every form serves the same network: normalised links in, normalised targets out, the
normalisation and the physics-consistent outputs staying with the model
(``CoverageModel.outputs_from``). ``export_onnx`` writes the network as ONNX (opset
``ONNX_OPSET``, a dynamic batch axis), checked against the PyTorch outputs before the file is
put in place; ``onnx_backbone`` answers ``predict`` and ``predict_array`` with it, and
``torchscript_backbone`` with a frozen TorchScript graph; ``served_selector`` builds a
Selector on two served backbones.

Reduced precision (``precision="bf16"`` in ``predict``) is a serving option, never the
paper's: ``precision_cost`` measures what it costs against fp32 on a split (noise-free
errors), and ``ADMISSIBLE_COST`` is the most it may cost to be used.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core import validation
from ..core.schema import FEATURES, TARGET_INDEX, TARGETS
from ..physics.sampling import draw_features
from ..core.io import atomic_write_bytes
from ..core.links import check_features, feature_array, frame_array
from ..physics.oracle import oracle_predictions

ONNX_OPSET = 18          # pinned: ONNX Runtime ≥ 1.14 runs it
ONNX_TOLERANCE = 1e-4    # max |ONNX − PyTorch| allowed on the check rows, normalised units
# The most reduced precision may cost, as the change of the noise-free MAE on the test split.
ADMISSIBLE_COST = {"received_power_dbm": 0.02, "coverage_radius_m": 1.0}  # dB, m


def export_onnx(model, path, links: pd.DataFrame) -> Path:
    """Write ``model``'s network as ONNX at ``path`` (atomically) and return the path.

    ``links`` (a few physical links, columns FEATURES) trace the graph and check it: ONNX
    Runtime's outputs must match PyTorch's within ``ONNX_TOLERANCE``, or ValueError and no
    file. The batch axis is dynamic.
    """
    check_features(links)
    if len(links) < 2:
        raise ValueError(f"links must hold at least 2 rows to trace a batch axis; got {len(links)}")
    x = model.normalizer.feature_array(feature_array(links))
    model.eval()
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), _quiet("torch.onnx"), torch.inference_mode(False), \
            torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes, e.g. torchvision not installed
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=ONNX_OPSET,
                                    input_names=["links"], output_names=["targets"],
                                    dynamic_shapes=({0: batch},), verbose=False)
    payload = program.model_proto.SerializeToString()
    got = ort_session(payload).run(None, {"links": x.numpy()})[0]
    with torch.inference_mode():
        expected = model(x).numpy()
    error = float(np.abs(got - expected).max())
    if not error <= ONNX_TOLERANCE:
        raise ValueError(f"the ONNX export of {type(model).__name__} differs from PyTorch by "
                         f"{error:.3g} (normalised units; allowed {ONNX_TOLERANCE})")
    return atomic_write_bytes(path, payload)


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Only errors from ``logger_name`` while inside (the ONNX exporter logs its registry)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def ort_session(path, threads: int | None = None):
    """An ONNX Runtime CPU session on ``path`` (or the model's bytes) with ``threads``
    intra-op threads (default: torch's, so timings compare like with like)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    source = path if isinstance(path, bytes) else str(path)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class ServedBackbone:
    """A backbone whose network runs outside eager PyTorch: ``predict`` and ``predict_array``
    as the model's own (same checks, normalisation and consistent outputs), the network being
    ``network`` (normalised float32 links → normalised targets; ``as_numpy``: it takes and
    gives numpy arrays, as ONNX Runtime does). A Selector can be built on two of them
    (``served_selector``)."""

    def __init__(self, model, network, as_numpy: bool = False):
        self.model, self.network, self.as_numpy = model, network, as_numpy
        self.normalizer, self.physics_assumptions = model.normalizer, model.physics_assumptions

    def predict_array(self, x: np.ndarray, outputs: str = "consistent") -> np.ndarray:
        x = feature_array(x)
        normalised = self.normalizer.feature_array(x)
        return self.model.outputs_from(
            x, self.network(normalised.numpy() if self.as_numpy else normalised), outputs)

    def predict(self, features: pd.DataFrame, outputs: str = "consistent") -> pd.DataFrame:
        return pd.DataFrame(self.predict_array(frame_array(features), outputs),
                            columns=TARGET_INDEX, index=features.index)


def onnx_backbone(model, onnx_path, threads: int | None = None) -> ServedBackbone:
    """``model`` served by ONNX Runtime from ``onnx_path`` (``export_onnx`` of that model)."""
    session = ort_session(onnx_path, threads)
    return ServedBackbone(model, lambda x: session.run(None, {"links": x})[0], as_numpy=True)


def torchscript_backbone(model) -> ServedBackbone:
    """``model`` served as a frozen TorchScript graph (``torchscript_network``)."""
    return ServedBackbone(model, torchscript_network(model))


def served_selector(selector, serve=torchscript_backbone):
    """A copy of ``selector`` (same domain, thresholds, rules) whose two backbones are served
    by ``serve`` (``torchscript_backbone``, or ``lambda m: onnx_backbone(m, path)``)."""
    import copy

    served = copy.copy(selector)
    served.primary, served.backup = serve(selector.primary), serve(selector.backup)
    return served


def torchscript_network(model, links: pd.DataFrame | None = None):
    """The network as a frozen TorchScript graph, traced on ``links`` (physical links; two
    drawn from the domain if left out: the graph has no data-dependent branch, and tracing
    unrolls the law head's fixed-count solver loops): a callable on normalised tensors."""
    if links is None:
        links = draw_features(2, np.random.default_rng(0))
    check_features(links)
    x = model.normalizer.feature_array(feature_array(links))
    model.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(
            model, x, check_trace=False)))

    def run(normalised):
        with torch.inference_mode():
            return frozen(normalised)
    return run


def precision_cost(model, frame: pd.DataFrame, precision: str = "bf16") -> dict:
    """What serving ``model`` in ``precision`` costs against fp32 on ``frame`` (a split with
    its noise-free columns): per target, the noise-free MAE in fp32, in ``precision`` and the
    change; the largest change of any row's answer; and ``admissible``, whether the MAE
    changes stay within ``ADMISSIBLE_COST``."""
    validation.one_of("bf16")("precision", precision)
    x = frame[FEATURES].to_numpy(dtype=float)
    gap = model.physics_assumptions["implementation_gap_db"]
    truth = oracle_predictions(frame, gap)[TARGETS].to_numpy(dtype=float)
    answers = {p: model.predict_array(x, precision=p) for p in ("fp32", precision)}
    out = {"precision": precision, "rows": int(len(frame)), "targets": {}}
    for j, target in enumerate(TARGETS):
        mae = {p: float(np.mean(np.abs(y[:, j] - truth[:, j]))) for p, y in answers.items()}
        out["targets"][target] = {
            "mae_fp32": mae["fp32"], f"mae_{precision}": mae[precision],
            "mae_change": mae[precision] - mae["fp32"],
            "max_row_change": float(np.max(np.abs(answers[precision][:, j]
                                                  - answers["fp32"][:, j]))) if len(x) else 0.0}
    out["admissible"] = all(abs(out["targets"][t]["mae_change"]) <= limit
                            for t, limit in ADMISSIBLE_COST.items())
    return out
