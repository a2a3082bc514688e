"""The prediction API against this machine's hardware (benchmark, not a test).

One run, one machine: the GEMM peak in fp32 and bf16 (the roofline's ceiling), then every
registered backbone and the Selector at batch 1 and 4096: ``predict`` (DataFrame),
``predict_array``, the network eager, as frozen TorchScript, in ONNX Runtime (exported here,
opset ``serving.ONNX_OPSET``) and, for the MLP, in bf16 autocast; rows/s, the fraction of the
MLP's roofline, the bf16 accuracy cost on the test split and the serving goals. Timings are
medians after warm-up; run it on an otherwise idle machine.

    .venv/bin/python benchmarks/bench_api.py [--data-dir data/paper] [--threads 2]
        [--repeats 200] [--cost-rows 0] [--json results.json]

Needs a finished run of the profile (its checkpoints, validation thresholds and test split).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from coverage_lib.datasets import dataset
from coverage_lib.evaluation import latency, paper_goals, scoring, serving
from coverage_lib.core import machine, paths
from coverage_lib.models import registry
from coverage_lib.core.schema import FEATURES


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls at batch 1 "
                        "(batch 4096: a tenth, at least 10)")
    parser.add_argument("--cost-rows", type=int, default=0,
                        help="test rows for the bf16 cost (0: all)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    here = {**machine.machine(), "cpu_flags": machine.cpu_flags(),
            "bf16_native": machine.bf16_native()}
    print(f"{machine.machine_line(here)}; flags: {' '.join(here['cpu_flags'])}")
    peaks = {"fp32": machine.gemm_peak_gflops(torch.float32),
             "bf16": machine.gemm_peak_gflops(torch.bfloat16)}
    print(f"GEMM peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s "
          f"({'native' if here['bf16_native'] else 'emulated: no avx512_bf16/AMX here'})")

    models = scoring.load_models(args.data_dir, lightgbm=False)
    test = dataset.load_split(paths.dataset_dir(args.data_dir), "test")
    folder = Path(tempfile.mkdtemp(prefix="bench_api_"))
    onnx_paths = {}
    for key, model in models.backbones.items():
        start = time.perf_counter()
        onnx_paths[key] = serving.export_onnx(model, folder / f"{key}.onnx",
                                              test[FEATURES].head(64))
        print(f"ONNX export of {key}: {time.perf_counter() - start:.1f} s")

    # as the evaluation draws them: 4096 test rows (with replacement where the split is smaller)
    rows = test[FEATURES].sample(n=4096, replace=len(test) < 4096,
                                 random_state=0).reset_index(drop=True)
    timings = latency.measure(latency.variants(models, onnx_paths), rows, batches=(1, 4096),
                              repeats={1: args.repeats, 4096: max(10, args.repeats // 10)})
    print(latency.table(timings.to_dict(orient="records"), ("median_ms", "rows_per_s"))
          .round(3).to_string())
    timings = timings.to_dict(orient="records")

    mlp_key = registry.by_role("primary").key
    mlp = models.backbones[mlp_key]
    flops = latency.linear_flops_per_row(mlp)
    roof = latency.roofline(timings, registry.get(mlp_key).name, flops, peaks)
    print(f"\nMLP: {flops / 1e6:.3f} MFLOP per row; roofline fp32 "
          f"{peaks['fp32'] * 1e9 / flops:,.0f} rows/s, bf16 {peaks['bf16'] * 1e9 / flops:,.0f}")
    for r in roof:
        print(f"  {r['variant']:<32} {r['rows_per_s']:>10,.0f} rows/s  "
              f"{r['fraction_of_roofline']:.2f} of the {r['precision']} roofline")

    cost_rows = test if args.cost_rows <= 0 else test.head(args.cost_rows)
    costs = {}
    for key, model in models.backbones.items():
        start = time.perf_counter()
        costs[key] = serving.precision_cost(model, cost_rows, "bf16")
        t = costs[key]["targets"]
        print(f"bf16 cost, {key} ({len(cost_rows)} test rows, {time.perf_counter() - start:.0f} s):"
              f" power MAE {t['received_power_dbm']['mae_change']:+.4f} dB, radius MAE "
              f"{t['coverage_radius_m']['mae_change']:+.2f} m, largest row change "
              f"{t['received_power_dbm']['max_row_change']:.3f} dB / "
              f"{t['coverage_radius_m']['max_row_change']:.1f} m; admissible: "
              f"{costs[key]['admissible']}")

    summary = {"gemm_peak_gflops": peaks, "mlp_flops_per_row": flops, "roofline": roof,
               "bf16_cost": costs[mlp_key]}
    goals = paper_goals.serving_goals(timings, summary)
    print("\nGoals")
    for g in goals:
        verdict = "met" if g["met"] else "NOT met"
        print(f"  {g['goal']:<62} {g['value']:>9.3f}  ({g['kind']} {g['limit']:g}): {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": here, "latency": timings, "roofline": roof, "gemm_peak_gflops": peaks,
             "bf16_cost": costs, "goals": goals}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
