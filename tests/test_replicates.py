"""Replicates and their error bars: what a seed re-draws, how a learning-curve set is cut, the
t-interval against an independent computation, and the verdicts worded from it."""
import json
import os
import math

import numpy as np
import pytest

from coverage_lib.core import schema, validation
from coverage_lib.datasets import dataset, replicates
from coverage_lib.evaluation import seeds_stage, runner
from coverage_lib.report import seed_tables
from coverage_lib.datasets.replicates import Replicate


def test_replicates_are_every_seed_then_every_size_for_every_seed():
    got = [r.name for r in replicates.replicates([0, 1, 2], [300, 100])]
    assert got == ["seed0-rowsall", "seed1-rowsall", "seed2-rowsall", "seed0-rows100",
                   "seed1-rows100", "seed2-rows100", "seed0-rows300", "seed1-rows300",
                   "seed2-rows300"]
    assert Replicate(0).is_main and Replicate(0).data_dir("data/p") == "data/p"
    assert Replicate(1, 100).data_dir("data/p") == "data/p/runs/seed1-rows100"


def test_seed_zero_reproduces_the_data_stage_split_and_other_seeds_do_not():
    df = dataset.generate(2000, seed=3)
    ranges = {"frequency_ghz": [0.5, 40.0], "rain_rate_mmh": [0.0, 40.0],
              "distance_m": [10.0, 2500.0]}
    indices = dataset.split(df, [0.7, 0.15, 0.15], ranges, seed=3)
    main = replicates.cut(replicates.split_order(indices, 3, 0), [0.7, 0.15, 0.15], None)
    for s in ("train", "val", "test"):
        assert np.array_equal(main[s], indices[s])
    other = replicates.cut(replicates.split_order(indices, 3, 1), [0.7, 0.15, 0.15], None)
    assert not np.array_equal(other["test"], indices["test"])
    assert sorted(np.concatenate(list(other.values()))) == \
        sorted(np.concatenate([indices[s] for s in ("train", "val", "test")]))
    # a learning-curve set is the first rows of its seed's training and validation orders,
    # in the split's proportion (nested), tested on the same test rows
    small = replicates.cut(replicates.split_order(indices, 3, 1), [0.7, 0.15, 0.15], 100)
    large = replicates.cut(replicates.split_order(indices, 3, 1), [0.7, 0.15, 0.15], 400)
    assert len(small["train"]) == 100 and set(small["train"]) <= set(large["train"])
    assert np.array_equal(small["val"], other["val"])  # fewer than 1,000: all of them
    assert np.array_equal(small["test"], other["test"])
    order = np.random.default_rng(0).permutation(100_000)
    cuts = {n: replicates.cut(order, [0.7, 0.15, 0.15], n) for n in (2000, 10_000, 60_000)}
    assert [len(c["val"]) for c in cuts.values()] == [1000, 2143, 12857]  # n · 15/70, ≥ 1,000
    assert set(cuts[2000]["val"]) <= set(cuts[10_000]["val"]) <= set(cuts[60_000]["val"])
    assert all(np.array_equal(c["test"], np.sort(order[85_000:])) for c in cuts.values())
    everything = replicates.cut(replicates.split_order(indices, 3, 1), [0.7, 0.15, 0.15],
                                len(other["train"]))
    assert np.array_equal(everything["val"], other["val"])  # never more than the split has
    with pytest.raises(ValueError, match="train_rows must be at most"):
        replicates.cut(replicates.split_order(indices, 3, 1), [0.7, 0.15, 0.15], 10**6)


def test_epochs_grow_as_rows_shrink_up_to_the_cap():
    assert replicates.epochs_for(10, 1000, None, 4) == 10
    assert replicates.epochs_for(10, 1000, 500, 4) == 20
    assert replicates.epochs_for(10, 1000, 100, 4) == 40
    assert replicates.epochs_for(7, 1000, 999, 4) == 8


def test_replicate_data_set_is_cut_from_the_main_one_and_skipped_when_unchanged(tmp_path):
    df, indices, stats = dataset.build(3000, 7, [0.7, 0.15, 0.15],
                                       {"frequency_ghz": [0.5, 40.0],
                                        "rain_rate_mmh": [0.0, 40.0],
                                        "distance_m": [10.0, 2500.0]})
    main_dir = str(tmp_path / "main")
    dataset.write_dataset(tmp_path / "main" / "dataset", df, indices, stats)
    rep = Replicate(1, 200)
    assert replicates.write_dataset(main_dir, rep, 7, [0.7, 0.15, 0.15], log=print)
    folder = tmp_path / "main" / "runs" / rep.name / "dataset"
    train = dataset.load_split(folder, "train")
    assert len(train) == 200
    own = dataset.load_stats(folder)
    assert own["n_rows"] == 200 and own["physics"] == stats["physics"]
    assert math.isclose(own["features"]["distance_m"]["mean"], train["distance_m"].mean())
    # the OOD sets are the main ones, byte for byte
    for s in schema.OOD_SPLITS:
        name = dataset.FILE_SPLIT.format(s)
        assert (folder / name).read_bytes() == (tmp_path / "main" / "dataset" / name).read_bytes()
    # the rows are the main data set's rows
    assert set(train["distance_m"]) <= set(df["distance_m"])
    assert not replicates.write_dataset(main_dir, rep, 7, [0.7, 0.15, 0.15], log=print)
    (folder / "train_data.json").write_bytes(b"{}")  # damaged: written again
    assert replicates.write_dataset(main_dir, rep, 7, [0.7, 0.15, 0.15], log=lambda *_: None)
    assert dataset.load_split(folder, "train").equals(train)


def test_t_interval_against_its_formula():
    values = [1.0, 2.0, 4.0]
    iv = seeds_stage.interval(values, 0.95)
    mean, s = np.mean(values), np.std(values, ddof=1)
    assert math.isclose(iv["mean"], mean)
    assert math.isclose(iv["half_width"], 4.302652729911275 * s / math.sqrt(3), rel_tol=1e-9)
    assert iv["low"] < mean < iv["high"] and iv["n"] == 3
    one = seeds_stage.interval([2.0, None, float("nan")])
    assert one["n"] == 1 and one["half_width"] is None and one["mean"] == 2.0
    assert seeds_stage.interval([])["mean"] is None


def test_a_ratio_is_called_lower_or_higher_only_when_its_interval_excludes_one():
    assert seeds_stage.ratio_verdict(seeds_stage.interval([0.90, 0.91, 0.92])) == "lower"
    assert seeds_stage.ratio_verdict(seeds_stage.interval([1.10, 1.12, 1.11])) == "higher"
    assert seeds_stage.ratio_verdict(seeds_stage.interval([0.90, 1.10, 1.00])) == "indistinguishable"
    assert seeds_stage.ratio_verdict(seeds_stage.interval([0.5])) == "one seed only"


def test_seeds_parameters_are_checked():
    ok = {"seeds": [0, 1], "train_rows": [], "max_epoch_factor": 2, "level": 0.95,
          "chain_threads": 1, "budget_reference": {}}
    validation.validate("04b_seeds", seeds_stage.PARAMETERS, {"profile": "p", "data_dir": "d", **ok})
    for bad, message in (({"seeds": [1, 2]}, "including 0"), ({"seeds": [0, 0]}, "distinct"),
                         ({"train_rows": [0]}, r"train_rows\[0\] must be a positive integer"),
                         ({"max_epoch_factor": 0.5}, "max_epoch_factor must be"),
                         ({"level": 1.0}, "level must be a number in"),
                         ({"chain_threads": 0}, "chain_threads must be a positive integer"),
                         ({"budget_reference": {"nope": {}}}, "unknown backbone 'nope'"),
                         ({"budget_reference": {"mlp": {"epochs": 3}}},
                          r"budget_reference\['mlp'\] must have exactly epochs and"),
                         ({"budget_reference": {"mlp": {
                             "epochs": 3, "received_power_dbm": [0.2],
                             "coverage_radius_m": [1.0, 0.1]}}},
                          r"received_power_dbm must be \[mean, half-width\]")):
        with pytest.raises(ValueError, match=message):
            validation.validate("04b_seeds", seeds_stage.PARAMETERS, {"profile": "p", "data_dir": "d", **ok, **bad})
    with pytest.raises(ValueError, match="lightgbm_params must map each target"):
        runner.REPLICATE_PARAMETERS["lightgbm_params"]("lightgbm_params", {"sinr_db": {}})
    json.dumps(ok)


def test_chains_take_the_main_parameters_with_their_seed_folder_and_budget(
        finished_tiny, tmp_path, monkeypatch):
    import yaml

    from conftest import scratch_copy
    from coverage_lib.pipeline import definitions, replicate_chains

    root = scratch_copy(finished_tiny, tmp_path, monkeypatch)
    path = root / "params" / "tiny.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["04b_seeds"] = {**profile["04b_seeds"], "seeds": [0, 3], "train_rows": [100]}
    path.write_text(yaml.safe_dump(profile))
    all_params = definitions.stage_params("tiny")
    chains = replicate_chains.chains("tiny", all_params)
    assert [c.name for c in chains] == ["seed3-rowsall", "seed0-rows100", "seed3-rows100"]
    metrics = json.loads((root / "data" / "tiny" / "results" / "metrics.json").read_text())
    n_full = dataset.load_stats(root / "data" / "tiny" / "dataset")["n_rows"]
    for chain in chains:
        assert chain.data_dir == f"data/tiny/runs/{chain.name}" and chain.threads == 1
        *training, evaluation = chain.steps
        for stage, p in training:
            main = all_params[stage.name]
            assert p["seed"] == chain.replicate.seed and p["data_dir"] == chain.data_dir
            assert p["epochs"] == replicates.epochs_for(
                main["epochs"], n_full, chain.replicate.train_rows, 2)
            assert {k: v for k, v in p.items() if k not in ("seed", "data_dir", "epochs")} == \
                {k: v for k, v in main.items() if k not in ("seed", "data_dir", "epochs")}
        assert evaluation[0].notebook == "notebooks/replicate.ipynb"
        assert evaluation[1]["lightgbm_params"] == {
            t: c["params"] for t, c in metrics["lightgbm"]["chosen"].items()}
        # the physics rules on a seed's run on every row only (the tables' seeds)
        assert evaluation[1]["physics_rows"] == (
            all_params["04_evaluate"]["physics_rows"] if chain.replicate.train_rows is None
            else 0)
    assert chains[1].steps[0][1]["epochs"] == 2  # 100 rows of ~1,500: capped at 2 × 1 epoch


def test_local_chains_run_one_per_thread_budget_and_their_kernels_get_that_many(monkeypatch):
    from coverage_lib.pipeline import replicate_chains

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(4)))
    assert [replicate_chains.local_workers(n, t)
            for n, t in ((11, 1), (3, 1), (11, 2), (11, 8))] == [4, 3, 2, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with replicate_chains.kernel_threads(1):
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7"


def test_an_unreachable_scheduler_is_refused_before_any_work(finished_tiny, tmp_path,
                                                             monkeypatch):
    from conftest import scratch_copy
    from coverage_lib.pipeline import run

    root = scratch_copy(finished_tiny, tmp_path, monkeypatch)
    before = sorted(p.name for p in (root / "data" / "tiny").iterdir())
    for address in ("tcp://127.0.0.1:1", str(tmp_path / "missing.json")):
        with pytest.raises(ValueError, match="scheduler: cannot reach a Dask scheduler at"):
            run.run("tiny", scheduler=address, log=lambda *_: None)
    assert sorted(p.name for p in (root / "data" / "tiny").iterdir()) == before


def _scaled(tree, factor):
    """Every real leaf of ``tree`` times ``factor`` (counts, integers, stay as they are)."""
    if isinstance(tree, dict):
        return {k: _scaled(v, factor) for k, v in tree.items()}
    return tree * factor if isinstance(tree, float) else tree


def test_every_accuracy_table_shows_mean_and_half_width_over_seeds(finished_tiny):
    from coverage_lib.evaluation import result_files
    from coverage_lib.report import page_values, tables

    metrics = result_files.read_results(finished_tiny[0] / "data" / "tiny")
    kept = {k: metrics[k] for k in seeds_stage.PER_SEED if k != "training"}
    one = {"level": 0.95, "per_seed": {"0": kept}}
    two = {"level": 0.95, "per_seed": {"0": kept, "3": _scaled(kept, 1.1)}}

    # one seed: the tables and quoted numbers are the main run's, without an interval
    assert seeds_stage.spread(one)["half"]["accuracy"]["test"]["lightgbm"]["sinr_db"]["mae"] is None
    alone, main = page_values.book_tables(metrics, seeds_stage.spread(one)), \
        page_values.book_tables(metrics)
    assert all(alone[k].equals(main[k]) for k in main if hasattr(main[k], "equals"))
    quoted = seed_tables.quoted_numbers(one)
    assert quoted["mlp_power_vs_median_text"] == \
        f"{metrics['accuracy']['test']['mlp']['received_power_dbm']['mae_vs_median']:.3f}"
    assert quoted["selector_test_to_backup_text"] == f"{metrics['routing']['test']['to_backup']:.2%}"

    # two seeds, the second 10 % off: mean 1.05 v, half-width t(0.975, 1)·s/√2 = 12.706·0.05 v
    spread = seeds_stage.spread(two)
    assert spread["n"] == 2
    for band, entry in metrics["frequency_bands"]["ood_frequency"].items():
        got = spread["mean"]["frequency_bands"]["ood_frequency"][band]
        assert got["rows"] == entry["rows"] and isinstance(got["rows"], int)
        assert got["mlp"]["coverage_radius_m"] == pytest.approx(
            1.05 * entry["mlp"]["coverage_radius_m"], rel=1e-12)
    shown = page_values.book_tables(metrics, spread)
    t = 12.706204736174694
    v = metrics["accuracy"]["test"]["mlp"]["coverage_radius_m"]["mae"]
    mlp = result_files.model_names()["mlp"]
    cell = shown["table_test_mae"].loc[tables.target_label("coverage_radius_m"), mlp]
    assert cell == f"{tables.number(1.05 * v, 1)} ± {tables.number(t * 0.05 * v, 1)}"
    for name in ("table_test_mae", "table_test_vs_median", "table_test_r2", "table_ood_mae",
                 "table_noise_free", "table_bands", "table_routing", "table_physics_test",
                 "table_physics_ood"):
        assert shown[name].shape == main[name].shape, name
        # a value the same on both seeds (0 by definition, a share of 0 %) shows no interval
        pairs = zip(shown[name].to_numpy().ravel(), main[name].to_numpy().ravel())
        assert all(" ± " in c or c == m for c, m in pairs), name
        assert sum(" ± " in c for c in shown[name].to_numpy().ravel()) > 0, name
    oracle = result_files.model_names()["oracle"]
    assert shown["table_test_vs_median"].loc[tables.target_label("received_power_dbm"),
                                             oracle] == "0.000"
    for name in ("table_lightgbm", "table_selector", "table_tolerances"):
        assert shown[name].equals(main[name]), name  # the main run's: not over seeds
    band = next(iter(metrics["frequency_bands"]["ood_frequency"].values()))["rows"]
    assert band in shown["table_bands"].index.get_level_values(2)  # a count stays a count
    quoted = seed_tables.quoted_numbers(two)
    power = metrics["accuracy"]["test"]["mlp"]["received_power_dbm"]["mae_vs_median"]
    assert quoted["mlp_power_vs_median_text"] == f"{1.05 * power:.3f} ± {t * 0.05 * power:.3f}"


def test_goals_over_seeds_are_met_only_when_the_whole_interval_is(monkeypatch):
    from coverage_lib.evaluation import paper_goals
    from coverage_lib.report import tables, verdicts

    values = {"A": (0.5, 0.6), "B": (0.5, 0.5), "C": (2.0, 2.1), "D": (0.10, 0.11)}
    monkeypatch.setattr(paper_goals, "goals", lambda seed, physics, bands=None: [
        paper_goals.goal_row(f"MLP {name}", v[seed], 1.0, "max") for name, v in values.items()])
    serving = paper_goals.goal_row("Selector speed", 3.0, 1.0, "max")
    main = {"physics": {}, "goals": [*paper_goals.goals(0, {}), serving]}
    one = seeds_stage.goals({"level": 0.95, "per_seed": {"0": {"accuracy": 0, "physics": {}}}},
                          main)
    assert one == main["goals"]
    two = seeds_stage.goals({"level": 0.95, "per_seed": {"0": {"accuracy": 0, "physics": {}},
                                                       "1": {"accuracy": 1, "physics": {}}}},
                          main)
    assert two[-1] == serving  # the main run's goals beyond accuracy, as they are
    two = two[:-1]
    half = 12.706204736174694 * 0.05  # t(0.975, 1) · s/√2, s = 0.1/√2
    assert [g["met"] for g in two] == [None, True, False, True]  # A's interval holds 1
    assert two[0]["value"] == pytest.approx(0.55) and two[0]["half_width"] == pytest.approx(half)
    assert two[1]["half_width"] is None  # the same on both seeds: no interval to show
    shown = tables.goals(__import__("pandas").DataFrame(two), 4)
    assert list(shown["verdict"]) == ["undecided", "met", "not met", "met"]
    assert shown["measured"].iloc[0] == f"0.5500 ± {half:.4f}" and \
        shown["measured"].iloc[1] == "0.5000"
    text = verdicts.claim_verdict(two)
    assert "**not met**: 2 of 4 goals hold; missed: MLP C" in text and "undecided: MLP A" in text
    assert "2 of the 4 goals are met and 1 undecided" in text


def test_the_book_over_one_seed_is_the_main_run_and_over_two_has_intervals(finished_tiny):
    from coverage_lib.evaluation import result_files
    from coverage_lib.report import page_values, verdicts

    metrics = result_files.read_results(finished_tiny[0] / "data" / "tiny")
    kept = {k: metrics[k] for k in seeds_stage.PER_SEED if k != "training"}
    one = seed_tables.over_seeds(metrics, {"level": 0.95, "per_seed": {"0": kept}})
    main = {**page_values.book_tables(metrics), **verdicts.stable(metrics)}
    main.update({name: seed_tables.models_as_rows(main[name]) for name in seed_tables.BY_MODEL})
    for name, value in main.items():
        assert value.equals(one[name]) if hasattr(value, "equals") else value == one[name], name
    assert one["goals_met"] == sum(g["met"] for g in metrics["goals"])
    two = seed_tables.over_seeds(metrics, {"level": 0.95,
                                         "per_seed": {"0": kept, "1": _scaled(kept, 1.1)}})
    assert two["goals_total"] == len(metrics["goals"])
    assert two["goals_met"] + two["goals_undecided"] <= two["goals_total"]
    assert any(" ± " in m for m in two["table_goals"]["measured"])
    assert "Over 2 seeds" in two["ood_md"] and " ± " in two["mlp_power_vs_median_text"]


def test_the_budget_is_judged_against_the_earlier_interval():
    def iv(mean):
        return {"mean": mean, "half_width": 0.01, "low": mean - 0.01, "high": mean + 0.01}

    result = {"replicates": {"seed0-rowsall": {"train_rows": 100, "training": {"mlp": {"epochs": 18}}},
                             "seed0-rows10": {"train_rows": 10, "training": {"mlp": {"epochs": 36}}}},
              "accuracy": {"test": {"mlp": {"received_power_dbm": iv(0.29),
                                            "coverage_radius_m": iv(20.0)}}}}
    reference = {"mlp": {"epochs": 36, "received_power_dbm": [0.258, 0.022],
                         "coverage_radius_m": [22.4, 1.1]}}
    verdicts = seeds_stage.budget_verdicts(result, reference)
    assert verdicts["mlp"]["epochs"] == [18] and verdicts["mlp"]["earlier_epochs"] == 36
    assert verdicts["mlp"]["received_power_dbm"]["verdict"] == "worse"  # 0.29 > 0.280
    assert verdicts["mlp"]["coverage_radius_m"]["verdict"] == "better"  # 20.0 < 21.3
    result["accuracy"]["test"]["mlp"]["received_power_dbm"] = iv(0.28)
    assert seeds_stage.budget_verdicts(result, reference)["mlp"]["received_power_dbm"][
        "verdict"] == "within"


def test_a_metrics_file_of_an_older_format_plans_like_none(tmp_path, monkeypatch):
    # pins restored from before a format change hold an old metrics.json until the main
    # evaluation rewrites it: the run must start and plan the replicates as if there were none
    from coverage_lib.pipeline import replicate_chains

    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(tmp_path))
    results = tmp_path / "data" / "p" / "results"
    results.mkdir(parents=True)
    assert replicate_chains.main_metrics("data/p") is None  # none yet
    (results / "metrics.json").write_text('{"format": "d2tl-coverage-metrics/1"}')
    assert replicate_chains.main_metrics("data/p") is None
