"""CoverageMamba3 (the backbone around the Mamba-3 block, with its law head) and the physics
loss."""
import numpy as np
import pandas as pd
import pytest
import torch

from coverage_lib.datasets import dataset
from coverage_lib.physics import propagation
from coverage_lib.training import (checkpoint_io, compilation, optimisation, train_config,
                                   trainer)
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config, MambaLayer
from coverage_lib.models.normalization import Normalizer
from coverage_lib.training.physics_loss import PhysicsLoss, RULES

SMALL = Mamba3Config(d_model=16, d_state=8, n_layers=1, headdim=8)


@pytest.fixture(scope="module")
def frames():
    df = dataset.generate(2500, seed=31)
    return df.iloc[:2000].reset_index(drop=True), df.iloc[2000:].reset_index(drop=True)


def test_shapes_predict_contract_and_forms_agree(frames):
    train, val = frames
    torch.manual_seed(0)
    model = CoverageMamba3(Normalizer.fit(train).to_dict(), SMALL).double()
    x = torch.randn(4, 13, dtype=torch.float64)
    assert model(x).shape == (4, 5)
    layers = [*model.path.layers, *model.medium.layers]
    # The scan form is a choice of algorithm, not of model: both give the same outputs.
    for layer in layers:
        for block in (layer.forward_scan, layer.backward_scan):
            block.scan = "recurrent"
    y_recurrent = model(x)
    for layer in layers:
        for block in (layer.forward_scan, layer.backward_scan):
            block.scan = "parallel"
    torch.testing.assert_close(model(x), y_recurrent, rtol=1e-10, atol=1e-10)
    out = model.float().predict(val[FEATURES].head(6))
    assert list(out.columns) == TARGETS and len(out) == 6
    with pytest.raises(ValueError, match="los"):
        model.predict(val[FEATURES].drop(columns="los"))


@pytest.mark.parametrize("config", [SMALL, Mamba3Config(d_model=24, d_state=8, headdim=8,
                                                      rope_fraction=1.0)])
def test_both_directions_as_one_computation_match_two_mixers(config):
    """A bidirectional layer runs its two mixers as one stacked computation (``stacked_forward``):
    the same values and gradients as calling each mixer on its own (float64, round-off)."""
    torch.manual_seed(0)
    layer = MambaLayer(config).double()
    with torch.no_grad():  # away from the initialisation, where every mixer looks alike
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(33, 5, config.d_model, dtype=torch.float64, requires_grad=True)
    h = layer.norm(x)
    separate = x + (layer.forward_scan(h) + layer.backward_scan(h.flip(1)).flip(1))
    stacked = layer(x)
    torch.testing.assert_close(stacked, separate, rtol=1e-12, atol=1e-12)
    inputs = [x, *layer.parameters()]
    for a, b in zip(torch.autograd.grad(stacked.square().sum(), inputs),
                    torch.autograd.grad(separate.square().sum(), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_bidirectional_sees_later_tokens(frames):
    """A causal scan's first token cannot see the last; the bidirectional layer can."""
    train, _ = frames
    stats = Normalizer.fit(train).to_dict()
    for bidirectional, expect_change in ((False, False), (True, True)):
        torch.manual_seed(0)
        model = CoverageMamba3(stats, Mamba3Config(d_model=16, d_state=8, n_layers=1, headdim=8,
                                                   bidirectional=bidirectional))
        emb = torch.randn(2, 4, 16)  # the path encoder's four tokens
        a = model.path.layers[0](emb)
        emb2 = emb.clone()
        emb2[:, -1] += 1.0
        b = model.path.layers[0](emb2)
        assert (not torch.allclose(a[:, 0], b[:, 0])) == expect_change


def test_training_round_trips_and_leaves_the_physics_loss_nothing_to_teach(frames, tmp_path):
    """The law head obeys the physics loss's rules by construction: every penalty is zero
    (identities to float32 rounding), so the backup trains on the data loss alone."""
    train, val = frames
    trainer.seed_everything(0)
    normalizer = Normalizer.fit(train)
    model = CoverageMamba3(normalizer.to_dict(), SMALL)
    result = trainer.train(model, train, val, train_config.TrainConfig(epochs=2, batch_size=128),
                            tmp_path, "mamba", "best_coverage.pth", data_manifest_sha256="m",
                            progress=False, log=lambda *_: None)
    assert len(result.history["train_data_loss"]) == 2
    ckpt = checkpoint_io.load_checkpoint(tmp_path / "best_coverage.pth", data_manifest_sha256="m")
    assert ckpt["model_class"] == "CoverageMamba3" and ckpt["model_config"]["d_model"] == 16
    pd.testing.assert_frame_equal(ckpt["model"].predict(val[FEATURES]),
                                  model.predict(val[FEATURES]), check_exact=True)
    penalties = PhysicsLoss(normalizer, weight=1.0, n_points=3000, seed=1).all_penalties(model)
    for rule in ("power_vs_distance", "power_vs_rain", "radius_vs_distance"):
        assert penalties[rule] == 0.0, rule
    for rule in ("area_identity", "sinr_identity", "qos_identity"):
        assert penalties[rule] < 1e-9, (rule, penalties[rule])


class PhysicsModel(torch.nn.Module):
    """Normalised in → normalised out through the exact link budget (no learning)."""

    def __init__(self, normalizer):
        super().__init__()
        self.normalizer = normalizer

    def forward(self, x):
        import numpy as np
        from coverage_lib.models.normalization import FEATURE_TRANSFORMS
        raw = x.double().numpy() * self.normalizer.feature_std + self.normalizer.feature_mean
        cols = {}
        for i, c in enumerate(FEATURES):
            t = FEATURE_TRANSFORMS.get(c)
            v = raw[:, i]
            cols[c] = 10 ** v if t == "log10" else np.expm1(v) if t == "log1p" else v
        frame = pd.DataFrame(cols)
        # undo float32 round-off at the domain edges (rain 0, frequency 0.5 and 100 GHz)
        frame["rain_rate_mmh"] = frame["rain_rate_mmh"].clip(lower=0.0)
        frame["frequency_ghz"] = frame["frequency_ghz"].clip(0.5, 100.0)
        frame["scenario"] = frame["scenario"].round().astype(int)
        frame["los"] = frame["los"].round().astype(int)
        return self.normalizer.targets(propagation.link_budget(frame)).double()


def test_physics_loss_vanishes_for_the_physics_and_not_for_a_broken_model(frames):
    train, _ = frames
    normalizer = Normalizer.fit(train)
    hook = PhysicsLoss(normalizer, weight=1.0, n_points=3000, batch_size=3000, seed=1)
    idx = torch.arange(3000)
    exact = hook.penalties(PhysicsModel(normalizer), idx)
    assert set(exact) == set(RULES)
    for rule, value in exact.items():
        assert float(value) < 1e-8, (rule, float(value))

    class Broken(PhysicsModel):  # received power rises with distance
        def forward(self, x):
            y = super().forward(x).clone()
            y[:, 0] = y[:, 0] + 3.0 * x[:, 1].double()
            return y
    broken = hook.penalties(Broken(normalizer), idx)
    assert float(broken["power_vs_distance"]) > 1e-3
    assert float(broken["sinr_identity"]) > 1e-3


def test_bad_physics_weight_and_config_refused(frames):
    with pytest.raises(ValueError, match="physics weight must be a finite number ≥ 0; got -1"):
        PhysicsLoss(Normalizer.fit(frames[0]), weight=-1)
    with pytest.raises(ValueError, match="scan must be one of"):
        Mamba3Config(scan="fast")
    with pytest.raises(ValueError, match="n_layers must be a positive integer; got 0"):
        Mamba3Config(n_layers=0)


def test_weight_decay_acts_on_weight_matrices_only(frames):
    model = CoverageMamba3(Normalizer.fit(frames[0]).to_dict(), SMALL)
    decayed = {n for n, _ in model.named_parameters()} - optimisation.no_weight_decay(model)
    expected = set()
    for encoder in ("path", "medium"):
        expected |= {f"{encoder}.layers.0.{scan}.{proj}.weight"
                     for scan in ("forward_scan", "backward_scan")
                     for proj in ("in_proj", "out_proj")}
        expected |= {f"{encoder}.embed_weight", f"{encoder}.head.0.weight",
                     f"{encoder}.head.2.weight"}
        # The biases and D are flagged the mamba-ssm way; the B/C and embedding biases have 2+
        # dims.
        for name in ("embed_bias", "layers.0.forward_scan.B_bias",
                     "layers.0.forward_scan.C_bias", "layers.0.forward_scan.dt_bias",
                     "layers.0.forward_scan.D"):
            assert model.get_parameter(f"{encoder}.{name}")._no_weight_decay, name
    assert decayed == expected


def _train_small(frames, tmp_path, name, **kwargs):
    train, val = frames
    trainer.seed_everything(0)
    model = CoverageMamba3(Normalizer.fit(train).to_dict(), SMALL)
    result = trainer.train(model, train, val, train_config.TrainConfig(epochs=2, batch_size=256),
                           tmp_path / name, name, "best.pth", data_manifest_sha256="m",
                           progress=False, **kwargs)
    return model, result


@pytest.mark.slow  # torch.compile: inductor builds C++ kernels
def test_a_compiled_training_step_trains_the_same_model(frames, tmp_path, monkeypatch):
    """Above ``compilation.MIN_STEPS`` the backup's training step is compiled (full batches;
    the last, shorter one eagerly): the same losses as eager training to float32 round-off
    (the validation MAE within 1e-3 after two epochs),
    recorded in the history and checkpoint, and a checkpoint that loads as an eager model's."""
    _, eager = _train_small(frames, tmp_path, "eager", log=lambda *_: None)
    assert eager.history["training_compiled"] is False
    monkeypatch.setattr(compilation, "MIN_STEPS", 1)
    model, compiled = _train_small(frames, tmp_path, "compiled", log=lambda *_: None)
    assert compiled.history["training_compiled"] is True and compiled.history["compile_s"] > 0
    # Round-off of the fused kernels grows along the trajectory. The first epoch (the warm-up)
    # agrees to 1e-4; the second runs at the constant peak rate of the stopping rule, which
    # carries the round-off further than the cosine decay before it did: its mean training
    # loss was 9.7e-4 apart (relative) on the 2-core AVX2 machine, the validation MAE 1.1e-4
    # apart with an empty inductor cache. A broken compiled step would be percent apart.
    np.testing.assert_allclose(compiled.history["train_loss"][0],
                               eager.history["train_loss"][0], rtol=1e-4)
    np.testing.assert_allclose(compiled.history["train_loss"][1],
                               eager.history["train_loss"][1], rtol=3e-3)
    np.testing.assert_allclose(compiled.history["val_mae"], eager.history["val_mae"], rtol=1e-3)
    ckpt = checkpoint_io.load_checkpoint(tmp_path / "compiled" / "best.pth",
                                         data_manifest_sha256="m")
    assert ckpt["training_compiled"] is True
    pd.testing.assert_frame_equal(ckpt["model"].predict(frames[1][FEATURES]),
                                  model.predict(frames[1][FEATURES]), check_exact=True)


def test_a_failed_compile_trains_eagerly_and_says_why(frames, tmp_path, monkeypatch):
    def broken(model, **_):
        def call(x):
            raise RuntimeError("no C++ compiler")
        return call
    monkeypatch.setattr(compilation, "MIN_STEPS", 1)
    monkeypatch.setattr(compilation.torch, "compile", broken)
    said = []
    _, result = _train_small(frames, tmp_path, "fallback", log=said.append)
    assert result.history["training_compiled"] is False
    assert any("no C++ compiler" in line and "eagerly" in line for line in said)
