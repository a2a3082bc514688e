"""Where the networks run: the trainer's ``device`` and ``precision`` parameters, ``predict``
on a device, checkpoints moving between a GPU and a CPU. The CUDA tests are skipped without a
GPU (``benchmarks/gpu_check.py`` runs them on a lent one); the fused Mamba-3 kernel against
the parallel form, block by block, is in ``test_mamba3.py``."""
import numpy as np
import pandas as pd
import pytest
import torch

from coverage_lib.datasets import dataset
from coverage_lib.pipeline import profiles
from coverage_lib.core import validation
from coverage_lib.models import registry
from coverage_lib.training import checkpoint_io, train_config, trainer
from coverage_lib.core.schema import FEATURES
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.mamba3 import _fused_unavailable_reason
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config
from coverage_lib.models.normalization import Normalizer
from conftest import tiny_config

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")
needs_fused = pytest.mark.skipif(_fused_unavailable_reason() is not None,
                                 reason="needs CUDA and an importable mamba_ssm")
cpu_only = pytest.mark.skipif(CUDA, reason="checks a machine without CUDA")

MLP = MLPConfig(width=16, depth=2)
MAMBA = Mamba3Config(d_model=8, d_state=4, n_layers=1, headdim=8, expand=1,
                     bidirectional=False)
PAPER_MAMBA = Mamba3Config()  # the paper profile's sizes: d_model 32, d_state 16, headdim 16
KEYS = list(registry.BACKBONES)
TINY = dict(epochs=1, batch_size=128, lr=3e-3, patience=5, seed=3)
QUIET = dict(data_manifest_sha256="x", progress=False, log=lambda *_: None)


@pytest.fixture(scope="module")
def frames():
    df = dataset.generate(600, seed=11)
    return df.iloc[:450].reset_index(drop=True), df.iloc[450:].reset_index(drop=True)


def sized(key, sizes):
    """(model class, config) of the registered backbone ``key``: the config ``sizes`` gives it,
    else the tiny profile's."""
    backbone = registry.get(key)
    return backbone.classes()[0], sizes.get(key) or tiny_config(backbone)


def build(cls, config, train, seed=0):
    trainer.seed_everything(seed)
    return cls(Normalizer.fit(train).to_dict(), config)


def fit(model, frames, out_dir, **config):
    result = trainer.train(model, *frames, train_config.TrainConfig(**{**TINY, **config}),
                            out_dir, "run", "best.pth", **QUIET)
    return result, torch.load(out_dir / "best.pth", weights_only=True)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kwargs, message", [
    (dict(device="gpu"), "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"),
    (dict(device=0), "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 0"),
    (dict(device="cuda:99"), "device is 'cuda:99', but "),  # no machine here has 100 GPUs
    (dict(precision="fp16"), "precision must be one of ['fp32', 'bf16']; got 'fp16'"),
])
def test_bad_device_or_precision_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        train_config.TrainConfig(**kwargs)
    assert message in str(err.value)


@cpu_only
def test_cuda_without_cuda_refused_at_validation():
    """The stage's parameters are refused before any data are read, naming what is allowed."""
    quick = profiles.load_profile("quick")["02_train_mlp"]
    stage = {**quick, "profile": "quick", "data_dir": "data/does-not-exist", "device": "cuda"}
    message = "device is 'cuda', but CUDA is not available on this machine; allowed here: " \
              "['auto', 'cpu']"
    with pytest.raises(ValueError) as err:
        validation.validate("02_train_mlp", train_config.stage_rules(registry.get("mlp")), stage)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="device is 'cuda:1'"):
        trainer.resolve_device("cuda:1")


def test_auto_resolves_to_cuda_when_available():
    assert trainer.resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    assert trainer.resolve_device("cpu") == torch.device("cpu")


@cpu_only
def test_explicit_cpu_equals_auto_on_a_cpu_machine(frames, tmp_path):
    runs = [fit(build(CoverageMLP, MLP, frames[0]), frames, tmp_path / device, device=device)
            for device in ("cpu", "auto")]
    (a, ckpt_a), (b, ckpt_b) = runs
    for key in ("train_loss", "val_loss", "val_mae", "lr"):
        assert a.history[key] == b.history[key]
    assert same_weights(ckpt_a["model_state_dict"], ckpt_b["model_state_dict"])
    assert a.history["device_used"] == ckpt_a["device_used"] == "cpu"
    assert ckpt_b["train_config"]["device"] == "auto" and "scan_used" not in ckpt_b


def test_gpu_trained_mamba_checkpoint_loads_and_predicts_on_cpu(frames, tmp_path):
    """A checkpoint whose config says scan "fused", as a GPU run writes it, loads anywhere:
    rebuilt with scan "auto", the same weights run by the parallel form on the CPU."""
    model = build(CoverageMamba3, MAMBA, frames[0])
    result, ckpt = fit(model, frames, tmp_path, device="cpu")
    assert result.history["scan_used"] == ckpt["scan_used"] == "parallel"
    ckpt["model_config"] = {**ckpt["model_config"], "scan": "fused"}
    torch.save(ckpt, tmp_path / "gpu.pth")
    loaded = checkpoint_io.load_checkpoint(tmp_path / "gpu.pth")["model"]
    assert loaded.config["scan"] == "auto"
    pd.testing.assert_frame_equal(loaded.predict(frames[1][FEATURES]),
                                  model.predict(frames[1][FEATURES]), check_exact=True)


@pytest.mark.parametrize("key", KEYS)
def test_bf16_trains_and_stays_finite(frames, tmp_path, key):
    """bf16 autocast on the CPU (slow on CPUs without native bf16: the tiniest run)."""
    cls, config = sized(key, {"mlp": MLP, "mamba3": MAMBA})
    small = (frames[0].iloc[:256], frames[1].iloc[:64])
    result, ckpt = fit(build(cls, config, small[0]), small, tmp_path, precision="bf16",
                       batch_size=256)
    assert np.isfinite(result.history["train_loss"] + result.history["val_mae"]).all()
    assert ckpt["train_config"]["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in ckpt["model_state_dict"].values()
               if t.is_floating_point())


def test_predict_on_a_named_device(frames):
    model = build(CoverageMLP, MLP, frames[0])
    features = frames[1][FEATURES]
    pd.testing.assert_frame_equal(model.predict(features, device="cpu"),
                                  model.predict(features), check_exact=True)
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; "
                                         "got 'tpu'"):
        model.predict_array(features.to_numpy(), device="tpu")


# -- with a GPU ----------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("key", KEYS)
def test_cuda_training_writes_cpu_checkpoints_that_predict_alike(frames, tmp_path, key):
    cls, config = sized(key, {"mlp": MLP, "mamba3": PAPER_MAMBA})
    model = build(cls, config, frames[0])
    result, ckpt = fit(model, frames, tmp_path, device="cuda")
    assert result.history["device_used"].startswith("cuda:0 (")
    assert next(model.parameters()).device.type == "cpu"    # handed back on the CPU
    state = torch.load(tmp_path / "run_training_state.pth", weights_only=True)
    for tensors in (ckpt["model_state_dict"], state["model_state_dict"],
                    state["optimizer_state_dict"]["state"][0]):
        assert all(t.device.type == "cpu" for t in tensors.values())
    loaded = checkpoint_io.load_checkpoint(tmp_path / "best.pth")["model"]
    assert same_weights(loaded.state_dict(), model.state_dict())
    x = frames[1][FEATURES].to_numpy()
    on_cpu = loaded.network_outputs(loaded.normalizer.feature_array(x))
    on_cuda = loaded.network_outputs(loaded.normalizer.feature_array(x), device="cuda")
    assert on_cuda.device.type == "cpu"
    # the fused kernel keeps bf16 chunk states (about 5e-2 relative); fp32 kernels agree closely
    tolerance = 5e-2 if ckpt.get("scan_used") == "fused" else 1e-4
    assert (on_cuda - on_cpu).norm() / on_cpu.norm() < tolerance


class Killed(Exception):
    pass


def _kill_after_first_epoch(epoch):
    if epoch == 1:
        raise Killed


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(frames, tmp_path, device):
    """The resume state holds CPU tensors; resuming moves them back to the device."""
    config = train_config.TrainConfig(**{**TINY, "epochs": 2, "device": device})
    with pytest.raises(Killed):
        trainer.train(build(CoverageMLP, MLP, frames[0]), *frames, config, tmp_path / "a",
                       "run", "best.pth", on_epoch_end=_kill_after_first_epoch, **QUIET)
    resumed = trainer.train(build(CoverageMLP, MLP, frames[0]), *frames, config,
                             tmp_path / "a", "run", "best.pth", **QUIET)
    full, _ = fit(build(CoverageMLP, MLP, frames[0]), frames, tmp_path / "b", epochs=2,
                  device=device)
    assert resumed.resumed_from_epoch == 1
    if device == "cpu":
        assert resumed.history["val_mae"] == full.history["val_mae"]
    else:  # cuBLAS may pick other kernels after a restart: equal to round-off
        np.testing.assert_allclose(resumed.history["val_mae"], full.history["val_mae"],
                                   rtol=1e-5)


@needs_cuda
def test_bf16_prediction_close_to_fp32_on_cuda(frames):
    model = build(CoverageMLP, MLPConfig(), frames[0]).to("cuda")
    x = model.normalizer.feature_array(frames[1][FEATURES].to_numpy())
    fp32 = model.network_outputs(x)
    bf16 = model.network_outputs(x, precision="bf16")
    assert (bf16 - fp32).norm() / fp32.norm() < 5e-2


@needs_fused
def test_fused_backbone_matches_parallel_outputs_and_gradients(frames):
    """The whole CoverageMamba3 (both encoders, bidirectional layers, law head), one state
    dict: the fused kernel against the parallel form, in values and in gradients."""
    model = build(CoverageMamba3, Mamba3Config(scan="parallel"), frames[0]).cuda()
    x = model.normalizer.feature_array(frames[1][FEATURES].to_numpy()).cuda()
    weights = torch.randn(len(x), 5, device="cuda")

    def run(scan):
        for m in model.modules():
            if hasattr(m, "scan_on"):
                m.scan = scan
        model.zero_grad()
        out = model(x)
        (out * weights).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                              if p.grad is not None}

    (ref, ref_grads), (got, got_grads) = run("parallel"), run("fused")
    assert (got - ref).norm() / ref.norm() < 5e-2
    assert ref_grads.keys() == got_grads.keys()
    for name in ref_grads:
        scale = ref_grads[name].norm().clamp(min=1e-6)
        assert (got_grads[name] - ref_grads[name]).norm() / scale < 1e-1, name
