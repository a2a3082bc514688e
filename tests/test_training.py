"""CoverageMLP and the shared trainer: shapes, learning, checkpoints, resume after SIGKILL."""
import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from coverage_lib.datasets import dataset
from coverage_lib.training import checkpoint_io, optimisation, train_config, trainer
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer

SMALL = MLPConfig(width=32, depth=2)
FAST = dict(batch_size=256, lr=3e-3, weight_decay=1e-4, patience=50, seed=3)


@pytest.fixture(scope="module")
def frames():
    df = dataset.generate(4000, seed=11)
    return df.iloc[:3000].reset_index(drop=True), df.iloc[3000:].reset_index(drop=True)


def make_model(train, config=SMALL, seed=0):
    trainer.seed_everything(seed)
    return CoverageMLP(Normalizer.fit(train).to_dict(), config)


def test_paper_architecture_shapes_and_parameter_count(frames):
    model = make_model(frames[0], MLPConfig())
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == \
        [(13, 256)] + [(256, 256)] * 7 + [(256, 5)]
    # 13·256+256 + 7·(256·256+256) + 8 LayerNorms·(2·256) + 256·5+5
    assert sum(p.numel() for p in model.parameters()) == 469_509
    assert model(torch.zeros(7, 13)).shape == (7, 5)
    out = model.predict(frames[1][FEATURES].head(9))
    assert list(out.columns) == TARGETS and len(out) == 9


def test_weight_decay_acts_on_the_linear_weights_only(frames):
    model = make_model(frames[0], MLPConfig())
    decayed = {n for n, _ in model.named_parameters()} - optimisation.no_weight_decay(model)
    linears = [i for i, m in enumerate(model.net) if isinstance(m, torch.nn.Linear)]
    assert decayed == {f"net.{i}.weight" for i in linears}
    assert not any(hasattr(p, "_no_weight_decay") for p in model.parameters())


def test_training_learns_far_below_the_mean_predictor(frames, tmp_path):
    train, val = frames
    model = make_model(train)
    result = trainer.train(model, train, val, train_config.TrainConfig(epochs=15, **FAST),
                            tmp_path, "mlp", "best_mlp_coverage.pth",
                            data_manifest_sha256="x", progress=False, log=lambda *_: None)
    # The mean predictor's normalised MAE is ≈ 0.8 per target (standard normal: √(2/π)).
    y_val = model.normalizer.targets(val)
    mean_predictor_mae = float((y_val - y_val.mean(0)).abs().mean())
    assert min(result.history["val_mae"]) < 0.35 * mean_predictor_mae
    history = json.loads((tmp_path / "mlp_training_history.json").read_text())
    assert len(history["train_loss"]) == len(history["val_loss"]) == len(history["val_mae"]) == 15
    assert set(history["val_mae_per_target"]) == set(TARGETS)
    # the best epoch: the last that lowered the best validation MAE by more than 0.1 %
    best, expected = float("inf"), 0
    for epoch, value in enumerate(history["val_mae"], start=1):
        if value < best * (1 - train_config.TrainConfig().min_improvement):
            best, expected = value, epoch
    assert result.best_epoch == expected
    assert min(history["val_mae"]) >= best * (1 - 1e-3)
    assert history["stopped"] == "ceiling"  # patience 50: the 15 epochs are the ceiling
    assert result.val_metrics["received_power_dbm"]["r2"] > 0.8


def test_checkpoint_round_trip_gives_identical_predictions(frames, tmp_path):
    train, val = frames
    model = make_model(train)
    trainer.train(model, train, val, train_config.TrainConfig(epochs=2, **FAST), tmp_path, "mlp",
                   "best.pth", data_manifest_sha256="abc", progress=False, log=lambda *_: None)
    ckpt = checkpoint_io.load_checkpoint(tmp_path / "best.pth", data_manifest_sha256="abc")
    for key in ("model_state_dict", "feature_stats", "epoch", "r2", "val_metrics",
                "model_config", "data_manifest_sha256", "library_version"):
        assert key in ckpt
    pd.testing.assert_frame_equal(ckpt["model"].predict(val[FEATURES]),
                                  model.predict(val[FEATURES]), check_exact=True)


def test_two_runs_with_one_seed_give_the_same_history(frames, tmp_path):
    train, val = frames
    histories = []
    for run in ("a", "b"):
        model = make_model(train, seed=5)
        histories.append(trainer.train(
            model, train, val, train_config.TrainConfig(epochs=3, **FAST), tmp_path / run, "mlp",
            "best.pth", data_manifest_sha256="x", progress=False, log=lambda *_: None).history)
    for key in ("train_loss", "val_loss", "val_mae"):
        assert histories[0][key] == histories[1][key]


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs must be a positive integer; got 0"),
    (dict(lr=0.0), "lr must be a finite number > 0; got 0.0"),
    (dict(lr=-1e-3), "lr must be a finite number > 0; got -0.001"),
    (dict(loss="huber"), "loss must be one of ['mse', 'multitask']; got 'huber'"),
    (dict(batch_size=-1), "batch_size must be a positive integer; got -1"),
    (dict(lr_patience=0), "lr_patience must be a positive integer; got 0"),
    (dict(patience=2, lr_patience=3), "lr_patience (3) must not exceed patience (2)"),
    (dict(min_improvement=1.0), "min_improvement must be a number in [0, 1); got 1.0"),
    (dict(lr_factor=1.0), "lr_factor must lie strictly between 0 and 1; got 1.0"),
])
def test_bad_trainer_parameters_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        train_config.TrainConfig(**kwargs)
    assert message in str(err.value)


def test_the_stopping_rule_cuts_the_rate_on_a_plateau_and_stops_after_the_patience(frames,
                                                                                   tmp_path):
    # A rate so small that no epoch after the first lowers the validation MAE by 0.1 %: every
    # later epoch is a bad one. lr_patience 2: the rate halves after epochs 3 and 5; patience
    # 5: the run stops after epoch 6 of a ceiling of 20, converged by the rule.
    train, val = frames
    config = train_config.TrainConfig(epochs=20, batch_size=256, lr=1e-9, patience=5,
                                      lr_patience=2, seed=3)
    result = trainer.train(make_model(train), train, val, config, tmp_path, "mlp", "best.pth",
                           data_manifest_sha256="x", progress=False, log=lambda *_: None)
    history = result.history
    assert len(history["val_mae"]) == 6 and result.best_epoch == 1
    assert history["stopped"] == "patience" and history["epochs_without_better"] == 5
    peak = 1e-9
    assert history["lr"] == pytest.approx([peak, peak, peak, peak / 2, peak / 2, peak / 4])


def test_a_run_that_reaches_its_ceiling_says_so(frames, tmp_path):
    train, val = frames
    config = train_config.TrainConfig(epochs=2, **FAST)
    result = trainer.train(make_model(train), train, val, config, tmp_path, "mlp", "best.pth",
                           data_manifest_sha256="x", progress=False, log=lambda *_: None)
    on_disk = json.loads((tmp_path / "mlp_training_history.json").read_text())
    assert result.history["stopped"] == on_disk["stopped"] == "ceiling"


def test_the_warm_up_spans_the_first_epoch_then_holds_the_peak():
    factor = optimisation.warm_up(4)
    assert [factor(step) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@pytest.fixture()
def checkpoint(frames, tmp_path):
    train, val = frames
    trainer.train(make_model(train), train, val, train_config.TrainConfig(epochs=1, **FAST),
                   tmp_path, "mlp", "best.pth", data_manifest_sha256="abc", progress=False,
                   log=lambda *_: None)
    return tmp_path / "best.pth"


def test_other_files_and_mismatches_are_refused(checkpoint, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        checkpoint_io.load_checkpoint(text)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="not a D2TL Coverage checkpoint"):
        checkpoint_io.load_checkpoint(tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="MANIFEST sha256 abc"):
        checkpoint_io.load_checkpoint(checkpoint, data_manifest_sha256="def")

    def tampered(**changes):
        ckpt = torch.load(checkpoint, weights_only=True)
        ckpt.update(changes)
        path = tmp_path / "tampered.pth"
        torch.save(ckpt, path)
        return path
    with pytest.raises(ValueError, match="trained on features"):
        checkpoint_io.load_checkpoint(tampered(features=FEATURES[::-1]))
    with pytest.raises(ValueError, match="does not build a CoverageMLP"):
        checkpoint_io.load_checkpoint(tampered(model_config={**SMALL.__dict__, "width": 64}))
    with pytest.raises(ValueError, match="model class 'Nope'"):
        checkpoint_io.load_checkpoint(tampered(model_class="Nope"))


KILL_AFTER_EPOCH = 4
RUN_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    from coverage_lib.datasets import dataset
    from coverage_lib.models.mlp import CoverageMLP, MLPConfig
    from coverage_lib.models.normalization import Normalizer
    from coverage_lib.training import train_config, trainer
    torch.set_num_threads(1)
    df = dataset.generate(4000, seed=11)
    train, val = df.iloc[:3000].reset_index(drop=True), df.iloc[3000:].reset_index(drop=True)
    trainer.seed_everything(0)
    model = CoverageMLP(Normalizer.fit(train).to_dict(), MLPConfig(width=32, depth=2, dropout=0.1))
    config = train_config.TrainConfig(epochs=8, batch_size=64, lr=3e-3, patience=50, seed=3,
                                      lr_patience=1, min_improvement=0.15)  # frequent cuts
    kill_after = int(sys.argv[2]) if len(sys.argv) > 2 else None

    def die_after(epoch):  # SIGKILL right after this epoch's files are written: no clean-up runs
        if epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    result = trainer.train(model, train, val, config, sys.argv[1], "mlp", "best.pth",
                           data_manifest_sha256="x", on_epoch_end=die_after, progress=False)
    print("RESUMED_FROM", result.resumed_from_epoch, "BEST", result.best_epoch)
""")


@pytest.mark.slow  # three training runs in subprocesses
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run([sys.executable, script, clean], check=True, capture_output=True)

    # The run kills itself with SIGKILL after epoch KILL_AFTER_EPOCH (of 8): deterministic,
    # whatever the machine's load.
    killed_run = subprocess.run([sys.executable, script, killed, str(KILL_AFTER_EPOCH)],
                                capture_output=True, text=True)
    assert killed_run.returncode == -signal.SIGKILL, killed_run.stderr
    assert "RESUMED_FROM" not in killed_run.stdout
    history_path = killed / "mlp_training_history.json"
    interrupted_at = len(json.loads(history_path.read_text())["val_mae"])
    assert interrupted_at == KILL_AFTER_EPOCH

    resumed = subprocess.run([sys.executable, script, killed], check=True, capture_output=True,
                             text=True)
    assert f"RESUMED_FROM {interrupted_at}" in resumed.stdout
    a = json.loads((clean / "mlp_training_history.json").read_text())
    b = json.loads(history_path.read_text())
    for key in ("train_loss", "val_loss", "val_mae", "lr", "best_epoch"):
        assert a[key] == b[key], key
    # the rate was cut both before and after the kill, and the resumed run kept the cuts
    cuts = [e for e in range(1, len(a["lr"])) if a["lr"][e] < a["lr"][e - 1]]
    assert any(e < KILL_AFTER_EPOCH for e in cuts) and any(e >= KILL_AFTER_EPOCH for e in cuts)
    ca = checkpoint_io.load_checkpoint(clean / "best.pth")
    cb = checkpoint_io.load_checkpoint(killed / "best.pth")
    assert ca["epoch"] == cb["epoch"] and ca["val_metrics"] == cb["val_metrics"]


def test_matmul_flops_match_the_analytic_count_of_a_linear_layer():
    from coverage_lib.training.efficiency import matmul_flops

    layer, x = torch.nn.Linear(13, 256), torch.randn(512, 13)
    forward = 2 * 512 * 13 * 256  # one multiply and one add per weight and row
    assert matmul_flops(layer, x, backward=False) == forward
    # backward: the weight's gradient only (the input needs none), as many FLOPs again
    assert matmul_flops(layer, x, backward=True) == 2 * forward
    assert layer.weight.grad is None  # gradients cleared after counting


def test_a_run_records_its_achieved_gflops_against_the_gemm_peak(frames, tmp_path):
    train, val = frames
    model = make_model(train, seed=5)
    result = trainer.train(model, train, val, train_config.TrainConfig(epochs=1, **FAST),
                           tmp_path, "mlp", "best.pth", data_manifest_sha256="x",
                           progress=False, log=lambda *_: None)
    found = json.loads((tmp_path / "mlp_training_history.json").read_text())["efficiency"]
    assert found == result.history["efficiency"]
    assert found["matmul_flops_per_epoch"] > 0 and found["achieved_gflops"] > 0
    assert 0 < found["fraction_of_peak"] < 2 and found["threads"] == torch.get_num_threads()
