"""What tuning LightGBM costs and buys: the evaluation stage's random search against the grid
it replaced, beside the MLP (benchmark).

Fits the LightGBM baseline as ``runner.evaluate`` does, with a profile's 04_evaluate
settings (``lightgbm_space``, ``lightgbm_candidates``, ``lightgbm_search_rows``,
``lightgbm_max_rounds``, ``lightgbm_early_stopping``, ``lightgbm_min_improvement``), then the
grid the paper profile used before (leaves 63 and 255, learning rate 0.1, min child samples
20, a 50,000-row search, a 2,000-tree cap, 50 rounds of early stopping). Prints the cost of
each (search and refit wall seconds, predicting the test split, the size of the text models),
the parameters each target chose, its trees and whether they reached the cap, and the test
MAE per target (physical units, as metrics.json scores it) of both, beside the MLP's from the
profile's ``results/metrics.json`` (same data set, checked by its MANIFEST sha256). Writes
nothing: the stage's saved models stay as they are.

    nice -n 10 .venv/bin/python benchmarks/bench_lightgbm.py [--data-dir data/paper]
        [--profile paper] [--old rerun|metrics] [--converged]

``--old metrics`` reads the old grid's test MAE from metrics.json instead of refitting it (when
metrics.json still holds the grid's run). ``--converged`` also refits radius and area with the
parameters they chose and ``min_improvement`` 0 (any improvement counts): what stopping at
``lightgbm_min_improvement`` gave up, in trees, seconds and test MAE.
"""
import argparse
import time

import pandas as pd

from coverage_lib.datasets import dataset
from coverage_lib.evaluation import result_files
from coverage_lib.core import metrics, paths, validation
from coverage_lib.pipeline import profiles
from coverage_lib.models.baselines import LightGBMBaseline, random_candidates
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.normalization import (
    forward_transform, inverse_transform, TARGET_TRANSFORMS)

OLD_GRID = [{"num_leaves": leaves, "learning_rate": 0.1, "min_child_samples": 20}
            for leaves in (63, 255)]
OLD_SETTINGS = {"search_rows": 50000, "max_rounds": 2000, "early_stopping": 50}
NOISE_FREE = ("coverage_radius_m", "coverage_area_km2")


def fit(train, val, candidates, seed, search_rows, max_rounds, early_stopping,
        min_improvement=0.0):
    start = time.perf_counter()
    model = LightGBMBaseline(seed=seed, num_threads=2, num_boost_round=max_rounds,
                             early_stopping_rounds=early_stopping,
                             min_improvement=min_improvement)
    model.fit(train, val, candidates=candidates, search_rows=search_rows)
    return model, time.perf_counter() - start


def report(name, model, wall_s, test, cap):
    chosen = pd.DataFrame({t: {**c["params"], "trees": c["best_iteration"],
                               "cap reached": c["cap_reached"], "val MAE": c["val_mae"],
                               "search [s]": round(c["search_s"]), "refit [s]": round(c["refit_s"])}
                           for t, c in model.chosen.items()}).T
    search_s = sum(c["search_s"] for c in model.chosen.values())
    refit_s = sum(c["refit_s"] for c in model.chosen.values())
    print(f"\n== {name}: {len(model.search_results) // len(TARGETS)} candidates per target on "
          f"{model.search_rows} rows, cap {cap} trees ==")
    print(f"search {search_s:.0f} s + refit {refit_s:.0f} s = {search_s + refit_s:.0f} s "
          f"({wall_s:.0f} s wall with data preparation); cap reached by "
          f"{[t for t, c in model.chosen.items() if c['cap_reached']] or 'no target'}")
    print(chosen.to_string())
    start = time.perf_counter()
    predictions = model.predict(test[FEATURES])
    megabytes = sum(len(b.model_to_string()) for b in model.boosters.values()) / 1e6
    print(f"predicting the {len(test)} test rows: {time.perf_counter() - start:.1f} s; "
          f"text models {megabytes:.0f} MB")
    return metrics.target_metrics(test, predictions)


def converged(tuned, train, val, test, max_rounds, early_stopping, tuned_accuracy):
    """Radius and area refitted with their chosen parameters and min_improvement 0; the other
    targets as tuned. Test metrics as ``report`` returns them."""
    model = LightGBMBaseline(seed=tuned.seed, num_threads=2, num_boost_round=max_rounds,
                             early_stopping_rounds=early_stopping, min_improvement=0.0)
    x_train, x_val = (tuned.normalizer.features(f).numpy() for f in (train, val))
    x_test = tuned.normalizer.features(test[FEATURES]).numpy()
    out = dict(tuned_accuracy)
    print("\n== radius and area refitted with min_improvement 0 ==")
    for target in NOISE_FREE:
        kind = TARGET_TRANSFORMS[target]
        fitted = model._train(tuned.chosen[target]["params"], x_train,
                              forward_transform(kind, train[target].to_numpy(float)), x_val,
                              forward_transform(kind, val[target].to_numpy(float)))
        start = time.perf_counter()
        prediction = inverse_transform(kind, fitted["booster"].predict(
            x_test, num_iteration=fitted["best_iteration"]))
        predict_s = time.perf_counter() - start
        out[target] = metrics.regression_metrics(test[target], prediction)
        print(f"{target}: {fitted['best_iteration']} trees (tuned: "
              f"{tuned.chosen[target]['best_iteration']}), cap reached {fitted['cap_reached']}, "
              f"val MAE {fitted['val_mae']:.6f} (tuned: {tuned.chosen[target]['val_mae']:.6f}), "
              f"fit {fitted['seconds']:.0f} s, predicting the test rows {predict_s:.0f} s")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/paper")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--old", choices=("rerun", "metrics"), default="rerun")
    parser.add_argument("--converged", action="store_true")
    args = parser.parse_args()
    stage = profiles.load_profile(args.profile)["04_evaluate"]
    validation.validate("04_evaluate", {"profile": args.profile, "data_dir": args.data_dir, **stage})
    folder = paths.dataset_dir(args.data_dir)
    results = result_files.read_metrics(
        paths.resolve(args.data_dir) / "results" / "metrics.json")
    if results["data_manifest_sha256"] != dataset.identity(folder):
        raise SystemExit(f"{args.data_dir}/results/metrics.json was computed on another data "
                         "set; run the evaluation stage first")
    train, val, test = (dataset.load_split(folder, s) for s in ("train", "val", "test"))
    print(f"{args.data_dir}: train {len(train)}, validation {len(val)}, test {len(test)} rows; "
          f"settings of profile {args.profile}: "
          + ", ".join(f"{k}={v}" for k, v in stage.items() if k.startswith("lightgbm_")))

    candidates = random_candidates(stage["lightgbm_space"], stage["lightgbm_candidates"],
                                   stage["seed"])
    tuned, tuned_s = fit(train, val, candidates, stage["seed"], stage["lightgbm_search_rows"],
                         stage["lightgbm_max_rounds"], stage["lightgbm_early_stopping"],
                         stage["lightgbm_min_improvement"])
    accuracy = {"LightGBM tuned": report("random search", tuned, tuned_s, test,
                                         stage["lightgbm_max_rounds"])}
    if args.old == "rerun":
        old, old_s = fit(train, val, OLD_GRID, stage["seed"], **OLD_SETTINGS)
        accuracy["LightGBM old grid"] = report("old grid", old, old_s, test,
                                               OLD_SETTINGS["max_rounds"])
    else:
        accuracy["LightGBM old grid (metrics.json)"] = results["accuracy"]["test"]["lightgbm"]
    if args.converged:
        accuracy["LightGBM tuned, converged"] = converged(
            tuned, train, val, test, stage["lightgbm_max_rounds"],
            stage["lightgbm_early_stopping"], accuracy["LightGBM tuned"])
    accuracy["MLP (metrics.json)"] = results["accuracy"]["test"]["mlp"]

    table = pd.DataFrame({name: {t: acc[t]["mae"] for t in TARGETS}
                          for name, acc in accuracy.items()})
    table["MLP / tuned"] = table["MLP (metrics.json)"] / table["LightGBM tuned"]
    print("\n== test MAE (physical units: dBm, dB, m, km², qos) ==")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    vs_median = pd.DataFrame({name: {t: acc[t]["mae_vs_median"]
                                     for t in ("received_power_dbm", "sinr_db")}
                              for name, acc in accuracy.items()})
    print("\n== test MAE against the noise-free median (dB) ==")
    print(vs_median.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
