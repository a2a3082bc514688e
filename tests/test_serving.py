"""Serving: the array path answers as the DataFrame path, the ONNX export and TorchScript graph
answer as the PyTorch network, a failed export check leaves no file, the bf16 cost is measured,
and the roofline arithmetic."""
import numpy as np
import pandas as pd
import pytest
import torch

from coverage_lib.datasets import dataset
from coverage_lib.core import machine
from coverage_lib.evaluation import latency, serving
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models import registry
from coverage_lib.models.mamba_backbone import Mamba3Config
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer
from conftest import tiny_config

ID_RANGES = {"frequency_ghz": (0.5, 50.0), "rain_rate_mmh": (0.0, 60.0),
             "distance_m": (10.0, 5000.0)}
KEYS = list(registry.BACKBONES)
# The sizes served here; a backbone not named takes the tiny profile's config.
SIZES = {"mlp": MLPConfig(width=32, depth=2), "mlp_law": MLPConfig(width=16, depth=1),
         "mamba3": Mamba3Config(d_model=8, d_state=4, n_layers=1, headdim=4)}


@pytest.fixture(scope="module")
def data():
    df, indices, stats = dataset.build(1500, 7, (0.6, 0.2, 0.2), ID_RANGES)
    return {name: df.iloc[idx].reset_index(drop=True) for name, idx in indices.items()}


@pytest.fixture(scope="module")
def models(data):
    """An untrained model of each registered backbone, initialised from one seed in the
    registry's order with the backup last: the Selector test below routes some rows to the
    primary with these weights (not with every draw of untrained ones)."""
    torch.manual_seed(0)
    stats = Normalizer.fit(data["train"]).to_dict()
    return {b.key: b.classes()[0](stats, SIZES.get(b.key) or tiny_config(b)).eval()
            for b in sorted(registry.BACKBONES.values(), key=lambda b: b.role == "backup")}


@pytest.mark.parametrize("name", KEYS)
def test_predict_array_is_predict_without_pandas(data, models, name):
    model, features = models[name], data["test"][FEATURES]
    frame = model.predict(features)
    array = model.predict_array(features.to_numpy(dtype=float))
    np.testing.assert_array_equal(array, frame[TARGETS].to_numpy())
    raw = model.predict(features, outputs="raw")
    np.testing.assert_array_equal(model.predict_array(features.to_numpy(), outputs="raw"),
                                  raw.to_numpy())
    # chunking does not change an answer
    np.testing.assert_allclose(model.predict_array(features.to_numpy(), batch_size=7), array,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "fp16"}, r"precision must be one of \['fp32', 'bf16'\]; got 'fp16'"),
    ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
    ({"outputs": "heads"}, "outputs must be one of"),
])
def test_bad_predict_options_refused(data, models, kwargs, message):
    with pytest.raises(ValueError, match=message):
        models["mlp"].predict_array(data["test"][FEATURES].to_numpy(), **kwargs)


def test_bf16_serving_is_close_and_its_cost_is_measured(data, models):
    model, test = models["mlp"], data["test"]
    fp32 = model.predict_array(test[FEATURES].to_numpy())
    bf16 = model.predict_array(test[FEATURES].to_numpy(), precision="bf16")
    assert not np.array_equal(bf16, fp32)                   # it did run in reduced precision
    power = TARGETS.index("received_power_dbm")
    assert np.abs(bf16[:, power] - fp32[:, power]).max() < 2.0   # dB: bf16 keeps ~3 digits
    cost = serving.precision_cost(model, test)
    entry = cost["targets"]["received_power_dbm"]
    assert entry["mae_change"] == pytest.approx(entry["mae_bf16"] - entry["mae_fp32"])
    assert entry["max_row_change"] == pytest.approx(np.abs(bf16[:, power] - fp32[:, power]).max())
    assert cost["rows"] == len(test) and isinstance(cost["admissible"], bool)


@pytest.mark.slow  # the ONNX exporter traces each backbone
@pytest.mark.parametrize("name", KEYS)
def test_onnx_export_answers_as_pytorch(data, models, tmp_path, name):
    model, features = models[name], data["test"][FEATURES]
    path = serving.export_onnx(model, tmp_path / f"{name}.onnx", features.head(16))
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    import onnx
    assert onnx.load(str(path)).opset_import[0].version == serving.ONNX_OPSET
    served = serving.onnx_backbone(model, path)
    # another batch size than the traced one: the batch axis is dynamic
    np.testing.assert_allclose(served.predict(features)[TARGETS].to_numpy(),
                               model.predict(features)[TARGETS].to_numpy(), rtol=1e-4, atol=1e-3)
    one = features.head(1)
    np.testing.assert_allclose(served.predict_array(one.to_numpy()),
                               model.predict_array(one.to_numpy()), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="column 'distance_m'"):
        served.predict(features.head(3).assign(distance_m=-1.0))


@pytest.mark.slow  # runs the ONNX exporter too
def test_a_failed_onnx_check_leaves_no_file(data, models, tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "ONNX_TOLERANCE", -1.0)      # no export can pass
    target = tmp_path / "mlp.onnx"
    with pytest.raises(ValueError, match="differs from PyTorch"):
        serving.export_onnx(models["mlp"], target, data["test"][FEATURES].head(8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", KEYS)
def test_torchscript_network_answers_as_eager(data, models, name):
    model = models[name]
    x = model.normalizer.features(data["test"][FEATURES])
    run = serving.torchscript_network(model)
    with torch.inference_mode():
        expected = model(x)
    torch.testing.assert_close(run(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run(x[:1]), expected[:1], rtol=1e-5, atol=1e-5)


def test_a_selector_on_served_backbones_answers_as_the_selector(data, models):
    from coverage_lib.evaluation.selector import Selector

    stats = {"features": {c: {"min": float(data["train"][c].min()),
                              "max": float(data["train"][c].max())} for c in FEATURES},
             "in_distribution_ranges": ID_RANGES}
    selector = Selector(models[registry.by_role("primary").key],
                        models[registry.by_role("backup").key], stats)
    selector.fit_thresholds(data["val"], tolerance=0.01)
    served = serving.served_selector(selector)
    features = data["test"][FEATURES]
    eager, fast = selector.predict(features), served.predict(features)
    # a row at the gate's threshold may flip with round-off; nearly all keep their route
    same = (fast["reason"] == eager["reason"]).to_numpy()
    assert same.mean() > 0.95 and "" in set(eager["reason"])
    np.testing.assert_allclose(fast[TARGETS].to_numpy()[same], eager[TARGETS].to_numpy()[same],
                               rtol=1e-4, atol=1e-3)
    assert served.primary is not selector.primary and selector.thresholds is served.thresholds


def test_roofline_fractions():
    model = CoverageMLP(Normalizer.fit(dataset.generate(300, 0)).to_dict(),
                        MLPConfig(width=256, depth=8))
    flops = latency.linear_flops_per_row(model)
    assert flops == 2 * (13 * 256 + 7 * 256 * 256 + 256 * 5)   # 0.93 MFLOP per row
    timings = [{"model": "m", "variant": "network, eager", "batch": 4096, "rows_per_s": 1e5},
               {"model": "m", "variant": "network, eager bf16", "batch": 4096, "rows_per_s": 2e5},
               {"model": "m", "variant": "network, eager", "batch": 1, "rows_per_s": 1e3}]
    rows = latency.roofline(timings, "m", flops, {"fp32": 100.0, "bf16": 400.0})
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    assert rows[0]["fraction_of_roofline"] == pytest.approx(1e5 * flops / 100e9)
    assert rows[1]["fraction_of_roofline"] == pytest.approx(2e5 * flops / 400e9)
    assert machine.gemm_peak_gflops(max_size=256, repeats=2) > 0
