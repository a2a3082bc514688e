"""Which normalisation, activation and dropout train the 13 → 256×8 → 5 MLP best (benchmark).

Equal epochs on one profile's data; prints the best validation MAE (normalised) and the
received-power MAE against the noise-free median for each variant.

    .venv/bin/python benchmarks/bench_mlp_variants.py [--data data/quick] [--epochs 15]
"""
import argparse
import tempfile
import time

from coverage_lib.datasets import dataset
from coverage_lib.core import paths
from coverage_lib.training import train_config, trainer
from coverage_lib.models.mlp import CoverageMLP, MLPConfig
from coverage_lib.models.normalization import Normalizer

VARIANTS = {
    "LayerNorm + SiLU (default)": MLPConfig(),
    "no norm + SiLU": MLPConfig(norm="none"),
    "LayerNorm + GELU": MLPConfig(activation="gelu"),
    "LayerNorm + ReLU": MLPConfig(activation="relu"),
    "LayerNorm + SiLU + dropout 0.1": MLPConfig(dropout=0.1),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/quick")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    folder = paths.dataset_dir(args.data)
    train, val = dataset.load_split(folder, "train"), dataset.load_split(folder, "val")
    stats = Normalizer.fit(train).to_dict()
    config = train_config.TrainConfig(epochs=args.epochs, batch_size=512, lr=2e-3, patience=50)
    for name, model_config in VARIANTS.items():
        trainer.seed_everything(0)
        model = CoverageMLP(stats, model_config)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = trainer.train(model, train, val, config, tmp, "mlp", "best.pth",
                                    data_manifest_sha256="bench", progress=False,
                                    log=lambda *_: None)
        power = result.val_metrics["received_power_dbm"]["mae_vs_median"]
        print(f"{name:>32}: best val MAE {min(result.history['val_mae']):.4f} (epoch "
              f"{result.best_epoch}), power MAE vs median {power:.3f} dB, "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
