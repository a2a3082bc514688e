"""The CPU paths a device change could slow: MLP ``predict`` at batch 1 and 4096 and a training
epoch (benchmark, not a test). Compare two checkouts by running it on each, alternately:

    PYTHONPATH=/path/to/old .venv/bin/python benchmarks/bench_cpu_paths.py old
    PYTHONPATH=.            .venv/bin/python benchmarks/bench_cpu_paths.py new
"""
import json
import statistics
import sys
import tempfile
import time

import torch

from coverage_lib.datasets import dataset
from coverage_lib.core import schema
from coverage_lib.models import registry
from coverage_lib.training import train_config, trainer
from coverage_lib.models.normalization import Normalizer

ID_RANGES = {"frequency_ghz": (0.5, 40.0), "rain_rate_mmh": (0.0, 40.0),
             "distance_m": (10.0, 2500.0)}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "this checkout"
    df, idx, _ = dataset.build(30000, 2026, (0.7, 0.15, 0.15), ID_RANGES)
    train = df.iloc[idx["train"]].reset_index(drop=True)
    val = df.iloc[idx["val"]].reset_index(drop=True)
    torch.manual_seed(0)
    model = registry.get("mlp").build(Normalizer.fit(train).to_dict(),
                                      {"width": 256, "depth": 8, "dropout": 0.0}, None)
    model.eval()
    one, batch = val[schema.FEATURES].iloc[:1], val[schema.FEATURES].iloc[:4096]
    for _ in range(50):
        model.predict(one)
    result = {"checkout": label, "torch_threads": torch.get_num_threads(),
              "predict_batch1_ms": median_ms(lambda: model.predict(one), 1500),
              "predict_batch4096_ms": median_ms(lambda: model.predict(batch), 40)}
    with tempfile.TemporaryDirectory() as out:
        run = trainer.train(model, train, val, train_config.TrainConfig(epochs=3, batch_size=512),
                             out, "mlp", "best.pth", data_manifest_sha256="-", progress=False,
                             log=lambda *_: None)
    result["epoch_s"] = statistics.median(run.history["epoch_time_s"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
