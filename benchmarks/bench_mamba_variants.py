"""Causal vs bidirectional CoverageMamba3 (law head, data loss alone, as the pipeline trains it)
at equal epochs on one profile's data (benchmark).

    .venv/bin/python benchmarks/bench_mamba_variants.py [--data data/quick] [--epochs 6]
"""
import argparse
import tempfile
import time

from coverage_lib.datasets import dataset
from coverage_lib.core import paths
from coverage_lib.training import train_config, trainer
from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config
from coverage_lib.models.normalization import Normalizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/quick")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    folder = paths.dataset_dir(args.data)
    train, val = dataset.load_split(folder, "train"), dataset.load_split(folder, "val")
    normalizer = Normalizer.fit(train)
    for bidirectional in (False, True):
        trainer.seed_everything(0)
        model = CoverageMamba3(normalizer.to_dict(), Mamba3Config(bidirectional=bidirectional))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = trainer.train(
                model, train, val, train_config.TrainConfig(epochs=args.epochs, batch_size=512,
                                                        lr=3e-3), tmp, "mamba", "best.pth",
                data_manifest_sha256="bench", progress=False,
                log=lambda *_: None)
        params = sum(p.numel() for p in model.parameters())
        print(f"{'bidirectional' if bidirectional else 'causal':>13}: {params:,} parameters, "
              f"best val MAE (normalised) {min(result.history['val_mae']):.4f} at epoch "
              f"{result.best_epoch}, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
