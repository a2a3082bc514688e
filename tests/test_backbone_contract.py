"""The contract every registered backbone passes (as scikit-learn's ``check_estimator`` checks
an estimator): each check runs once per entry of ``registry.BACKBONES``, so a new backbone is
checked as soon as it is registered.

Each backbone is built small from its config (the tiny profile's, ``conftest.tiny_config``),
trained for one short epoch on a tiny generated data set as its training stage trains it
(``backbone_stage``), then: its checkpoint round trip is bit-exact, ``predict`` and
``predict_array`` answer a valid link and refuse a bad one naming the column, its bf16 forward
is finite and close to fp32, its ONNX export answers as PyTorch under ONNX Runtime, and the
live explorer either mirrors all its weights or refuses it with a message naming it."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, tiny_config, tiny_section

from coverage_lib.core import domain
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.datasets import dataset
from coverage_lib.models import registry
from coverage_lib.models.base import CoverageModel
from coverage_lib.models.normalization import Normalizer
from coverage_lib.physics import propagation
from coverage_lib.training import backbone_stage, checkpoint_io, train_config, trainer

KEYS = list(registry.BACKBONES)
ROWS = 600  # about 300 training and 70 validation rows: one optimiser step or two
# Mamba-3's RMSNorm under bf16 autocast notes that it falls back from its fused kernel
BF16_NOTE = "ignore:Mismatch dtype between input and weight:UserWarning"


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(data dir, train split, validation split, physics assumptions) of a tiny data set
    written as the data stage writes one (MANIFEST, statistics), made once."""
    data_dir = tmp_path_factory.mktemp("contract") / "data"
    ranges = {k[len("id_"):]: v for k, v in TINY.items() if k.startswith("id_")}
    dataset.build_files(data_dir / "dataset", ROWS, TINY["seed"], TINY["split_fractions"],
                        ranges, TINY["edge_sinr_db"], TINY["implementation_gap_db"])
    return (data_dir, *backbone_stage.training_data(data_dir, log=quiet))


def stage_params(backbone) -> dict:
    """The tiny profile's trainer settings for ``backbone``, one epoch."""
    return {**tiny_section(backbone), "epochs": 1, "seed": 0}


def build(backbone, train, assumptions):
    """A new small model, built from its config by the registry as its stage builds it."""
    torch.manual_seed(0)
    return backbone.build(Normalizer.fit(train).to_dict(),
                          dataclasses.asdict(tiny_config(backbone)), assumptions)


@pytest.fixture(scope="module", params=KEYS)
def trained(request, data):
    """(registry entry, model trained one epoch, training result) per backbone."""
    data_dir, train, val, assumptions = data
    backbone = registry.get(request.param)
    model = build(backbone, train, assumptions)
    result = backbone_stage.train_backbone(backbone.key, model, train, val, data_dir,
                                           stage_params(backbone), progress=False, log=quiet)
    return backbone, model, result


def links(data) -> pd.DataFrame:
    """Validation links and one reference link per scenario and LOS state, indexed by name."""
    val = data[2][FEATURES]
    return pd.concat([domain.reference_links(3.5), val.set_axis([f"val {i}" for i in
                                                                 range(len(val))])])


@pytest.mark.parametrize("key", KEYS)
def test_builds_small_from_its_config(key, data):
    backbone = registry.get(key)
    model_class, config_class = backbone.classes()
    assert issubclass(model_class, CoverageModel) and dataclasses.is_dataclass(config_class)
    assert registry.by_class_name(backbone.class_name) is backbone
    config = tiny_config(backbone)
    model = build(backbone, data[1], data[3])
    assert type(model) is model_class and model.physics_assumptions == data[3]
    assert config_class(**model.config) == config       # what a checkpoint rebuilds it from
    assert model.n_parameters > 0, model.summary()
    with torch.inference_mode():
        out = model.eval()(torch.zeros(7, len(FEATURES)))
    assert out.shape == (7, len(TARGETS)) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_one_short_epoch_trains_and_writes_the_registry_files(trained, data):
    backbone, model, result = trained
    history = result.history
    assert len(history["val_mae"]) == 1 and result.best_epoch == 1
    assert np.isfinite(history["train_loss"] + history["val_mae"]).all()
    assert result.checkpoint == backbone.checkpoint_path(data[0]) and result.checkpoint.is_file()
    assert backbone.history_path(data[0]).is_file()
    assert not model.training and next(model.parameters()).device.type == "cpu"


def test_checkpoint_round_trip_is_bit_exact(trained, data, tmp_path):
    """The trainer's checkpoint, and one written from a model in memory (untrained: the
    trained model's weights were themselves read back from its checkpoint), load through
    ``torch.load(weights_only=True)`` into the same class, config and tensors, answering
    identically."""
    backbone, model, result = trained
    data_dir, train, val, assumptions = data
    identity = dataset.identity(data_dir / "dataset")
    fresh = build(backbone, train, assumptions).eval()
    written = tmp_path / backbone.checkpoint
    checkpoint_io.save_torch(written, checkpoint_io.checkpoint_dict(
        fresh, 0, trainer.evaluate(fresh, val), train_config.TrainConfig(), identity,
        dataset.load_stats(data_dir / "dataset")))
    features = links(data)
    for original, path in ((model, result.checkpoint), (fresh, written)):
        ckpt = checkpoint_io.load_checkpoint(path, data_manifest_sha256=identity)
        loaded = ckpt["model"]
        assert ckpt["model_class"] == backbone.class_name and type(loaded) is type(original)
        assert loaded.config == original.config and not loaded.training
        assert loaded.physics_assumptions == original.physics_assumptions
        mine, theirs = original.state_dict(), loaded.state_dict()
        assert list(theirs) == list(mine)
        for name, tensor in mine.items():
            assert theirs[name].dtype == tensor.dtype and torch.equal(theirs[name], tensor), \
                (path.name, name)
        for outputs in ("consistent", "raw"):
            pd.testing.assert_frame_equal(loaded.predict(features, outputs=outputs),
                                          original.predict(features, outputs=outputs),
                                          check_exact=True)


def test_predict_answers_valid_links(trained, data):
    _, model, _ = trained
    features = links(data)
    frame = model.predict(features)
    assert list(frame.columns) == TARGETS and frame.index.equals(features.index)
    assert (frame.dtypes == np.float64).all() and np.isfinite(frame.to_numpy()).all()
    array = model.predict_array(features.to_numpy())
    assert array.shape == (len(features), len(TARGETS)) and array.dtype == np.float64
    np.testing.assert_array_equal(array, frame.to_numpy())
    # served consistent: the radius within the scenario's domain, the area its disc, qos in [0, 1]
    radius = frame["coverage_radius_m"].to_numpy()
    assert (radius >= 0).all()
    assert (radius <= propagation.max_distance_m(features["scenario"].to_numpy())).all()
    np.testing.assert_allclose(frame["coverage_area_km2"], np.pi * radius ** 2 / 1e6)
    assert frame["qos_score"].between(0, 1).all()
    assert not model.training                       # predict leaves the mode as it found it


@pytest.mark.parametrize("column, value, words", [
    ("distance_m", -1.0, "not a physical link's value; allowed: a distance > 0 m"),
    ("rain_rate_mmh", np.nan, "is NaN, inf or not a number"),
    ("scenario", 5, "not a physical link's value; allowed: one of the scenario codes"),
])
def test_predict_refuses_bad_links_naming_the_column(trained, data, column, value, words):
    _, model, _ = trained
    features = data[2][FEATURES].head(4).reset_index(drop=True)
    bad = features.copy()
    bad.loc[2, column] = value
    with pytest.raises(ValueError, match=f"column '{column}', row 2: .*{words}"):
        model.predict(bad)
    with pytest.raises(ValueError, match=f"column '{column}', row 2: .*{words}"):
        model.predict_array(bad.to_numpy())
    with pytest.raises(ValueError, match="features is missing column 'inr_db'"):
        model.predict(features.drop(columns="inr_db"))
    with pytest.raises(ValueError, match=r"shape \(rows, 13\)"):
        model.predict_array(features.to_numpy()[:, :12])


@pytest.mark.filterwarnings(BF16_NOTE)
def test_bf16_forward_is_finite_and_close_to_fp32(trained, data):
    """bf16 autocast on the CPU, as ``predict(precision="bf16")`` serves it."""
    _, model, _ = trained
    x = links(data).to_numpy()
    answers = model.predict_array(x, precision="bf16")
    assert answers.shape == (len(x), len(TARGETS)) and np.isfinite(answers).all()
    normalised = model.normalizer.feature_array(x)
    fp32 = model.network_outputs(normalised)
    bf16 = model.network_outputs(normalised, precision="bf16")
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert not torch.equal(bf16, fp32)                  # it did run in reduced precision
    assert (bf16 - fp32).norm() / fp32.norm() < 5e-2    # test_device's CUDA bound


@pytest.mark.slow  # the ONNX exporter traces each backbone: 4-25 s of CPU each, ~50 s for 3
def test_onnx_export_answers_as_onnx_runtime(trained, data, tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed (requirements.txt pins it)")
    pytest.importorskip("onnxruntime",
                        reason="onnxruntime is not installed (requirements.txt pins it)")
    import onnx

    from coverage_lib.evaluation import serving

    backbone, model, _ = trained
    features = links(data)
    path = serving.export_onnx(model, tmp_path / f"{backbone.key}.onnx", features.head(16))
    assert path.is_file() and onnx.load(str(path)).opset_import[0].version == \
        serving.ONNX_OPSET
    # another batch size than the traced one (the batch axis is dynamic), then one link
    x = model.normalizer.feature_array(features.to_numpy())
    got = serving.ort_session(path).run(None, {"links": x.numpy()})[0]
    assert np.abs(got - model.network_outputs(x).numpy()).max() <= serving.ONNX_TOLERANCE
    served = serving.onnx_backbone(model, path)
    np.testing.assert_allclose(served.predict(features)[TARGETS].to_numpy(),
                               model.predict(features)[TARGETS].to_numpy(), rtol=1e-4,
                               atol=1e-3)
    one = features.head(1).to_numpy()
    np.testing.assert_allclose(served.predict_array(one), model.predict_array(one), rtol=1e-4,
                               atol=1e-3)


def test_explorer_mirrors_every_weight_or_refuses_by_name(trained):
    """``explorer.bundle`` exports each of the Selector's two backbones with ``_backbone``:
    either every parameter goes to the page's weights, or a ValueError names the backbone
    and its class (the page has no forward pass for it)."""
    from coverage_lib.report import explorer

    backbone, model, _ = trained
    tensors = explorer._Tensors()
    try:
        entry = explorer._backbone(backbone.key, model, tensors)
    except ValueError as err:
        assert f"{backbone.key!r} is a {backbone.class_name}" in str(err)
        assert backbone.role == "", "the Selector routes to it, the explorer must run it"
        return
    assert entry["key"] == backbone.key and entry["label"] == backbone.name
    assert entry["kind"] in ("mlp", "mamba3_law")
    weights = np.frombuffer(tensors.to_bytes(), dtype="<f4")
    parameters = torch.cat([p.detach().float().ravel() for p in model.parameters()]).numpy()
    assert len(weights) == len(parameters) == model.n_parameters
    np.testing.assert_array_equal(np.sort(weights), np.sort(parameters))
