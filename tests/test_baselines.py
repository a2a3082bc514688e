"""The LightGBM baseline: it learns, its random search is deterministic and reports what it
cost and whether the tree cap bound, it round-trips through its own text format, and it
refuses what the networks refuse."""
import json

import lightgbm
import numpy as np
import pandas as pd
import pytest

from coverage_lib.datasets import dataset
from coverage_lib.models import baselines
from coverage_lib.models.baselines import (
    _early_stopping, DEFAULT_SPACE, FILE_META, FILE_MODEL, LightGBMBaseline, random_candidates,
    SEARCHABLE)
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.models.normalization import Normalizer

SPACE = {"num_leaves": [7, 31], "learning_rate": [0.1, 0.3], "min_child_samples": [10, 40],
         "feature_fraction": [0.7, 1.0]}
CANDIDATES = random_candidates(SPACE, 2, seed=0)
SETTINGS = dict(seed=0, num_threads=1, num_boost_round=300, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def frames():
    df = dataset.generate(3500, seed=41)
    return (df.iloc[:2500].reset_index(drop=True), df.iloc[2500:3000].reset_index(drop=True),
            df.iloc[3000:].reset_index(drop=True))


@pytest.fixture(scope="module")
def fitted(frames):
    train, val, _ = frames
    return LightGBMBaseline(**SETTINGS).fit(train, val, candidates=CANDIDATES,
                                            data_manifest_sha256="abc")


def test_learns_far_below_the_mean_predictor(frames, fitted):
    train, _, test = frames
    normalizer = Normalizer.fit(train)
    y_true = normalizer.targets(test).numpy()
    y_pred = normalizer.targets(pd.concat([test[FEATURES], fitted.predict(test[FEATURES])],
                                          axis=1)).numpy()
    mae = np.abs(y_pred - y_true).mean(axis=0)
    mean_predictor_mae = np.abs(y_true - y_true.mean(axis=0)).mean(axis=0)  # ≈ 0.8 each
    assert (mae < 0.4 * mean_predictor_mae).all(), dict(zip(TARGETS, mae / mean_predictor_mae))


def test_random_candidates_are_seeded_and_inside_the_space():
    drawn = random_candidates(DEFAULT_SPACE, 50, seed=3)
    assert drawn == random_candidates(DEFAULT_SPACE, 50, seed=3)
    assert drawn != random_candidates(DEFAULT_SPACE, 50, seed=4)
    assert random_candidates(DEFAULT_SPACE, 10, seed=3) == drawn[:10]  # more draws extend
    for name, (low, high) in DEFAULT_SPACE.items():
        values = [c[name] for c in drawn]
        assert all(low <= v <= high for v in values)
        assert all(isinstance(v, int if SEARCHABLE[name][1] else float) for v in values)
        assert len(set(values)) > 25, f"{name}: the draws should spread over the range"
    # Log-uniform: about half the leaf counts below the geometric mean of the range.
    below = np.mean([c["num_leaves"] < np.sqrt(np.prod(DEFAULT_SPACE["num_leaves"]))
                     for c in drawn])
    assert 0.3 < below < 0.7


def test_a_range_of_one_value_fixes_the_parameter():
    drawn = random_candidates({"num_leaves": [31, 31], "learning_rate": [0.05, 0.2]}, 5, seed=0)
    assert {c["num_leaves"] for c in drawn} == {31}
    assert all(set(c) == {"num_leaves", "learning_rate"} for c in drawn)


def test_search_is_recorded_and_the_best_candidate_kept(fitted):
    table = fitted.search_table()
    assert len(table) == len(CANDIDATES) * len(TARGETS)
    assert set(fitted.chosen) == set(TARGETS)
    for target, chosen in fitted.chosen.items():
        rows = table[table["target"] == target]
        assert list(rows["candidate"]) == list(range(len(CANDIDATES)))
        assert chosen["val_mae"] == rows["val_mae"].min()
        assert chosen["params"] == CANDIDATES[chosen["candidate"]]
        assert 1 <= chosen["best_iteration"] <= SETTINGS["num_boost_round"]
        assert fitted.boosters[target].current_iteration() == chosen["best_iteration"]
        # What the search cost: every candidate's seconds, no refit without search_rows.
        assert chosen["search_s"] == pytest.approx(rows["seconds"].sum())
        assert chosen["search_s"] > 0 and chosen["refit_s"] == 0.0
        assert chosen["cap_reached"] is False


def test_a_cap_that_binds_is_reported(frames):
    train, val, _ = frames
    capped = LightGBMBaseline(seed=0, num_threads=1, num_boost_round=3,
                              early_stopping_rounds=20).fit(
        train, val, candidates=[{"num_leaves": 7, "learning_rate": 0.05}], search_rows=1000)
    assert all(c["cap_reached"] and c["best_iteration"] == 3 for c in capped.chosen.values())
    assert capped.search_table()["cap_reached"].all()


def test_early_stopping_without_tolerance_is_lightgbms(frames):
    """min_improvement 0 stops where ``lightgbm.early_stopping`` does, with the same trees."""
    train, val, _ = frames
    x, y = train[FEATURES].to_numpy(), train["coverage_radius_m"].to_numpy()
    xv, yv = val[FEATURES].to_numpy(), val["coverage_radius_m"].to_numpy()
    settings = {"objective": "regression", "metric": "l1", "seed": 0, "deterministic": True,
                "force_row_wise": True, "num_threads": 1, "verbosity": -1, "num_leaves": 7,
                "learning_rate": 0.3}
    boosters = []
    for callback in (lightgbm.early_stopping(5, verbose=False), _early_stopping(5, 0.0)):
        train_set = lightgbm.Dataset(x, y, params=settings)
        boosters.append(lightgbm.train(settings, train_set, num_boost_round=500,
                                       valid_sets=[lightgbm.Dataset(xv, yv, reference=train_set)],
                                       callbacks=[callback]))
    theirs, ours = boosters
    assert 5 < ours.best_iteration < 495 and ours.best_iteration == theirs.best_iteration
    assert ours.best_score["valid_0"]["l1"] == theirs.best_score["valid_0"]["l1"]
    assert ours.model_to_string() == theirs.model_to_string()


def test_a_tolerance_stops_sooner_and_counts_only_real_improvements(frames):
    """With min_improvement, the kept iteration is the last one that beat the best by that
    fraction; the fit stops no later and keeps no more trees than without it."""
    train, val, _ = frames
    fits = {tolerance: LightGBMBaseline(seed=0, num_threads=1, num_boost_round=3000,
                                        early_stopping_rounds=20,
                                        min_improvement=tolerance).fit(
        train, val, candidates=[{"num_leaves": 7, "learning_rate": 0.1}])
        for tolerance in (0.0, 0.01)}
    for target in TARGETS:
        strict, tolerant = fits[0.0].chosen[target], fits[0.01].chosen[target]
        assert tolerant["best_iteration"] <= strict["best_iteration"]
        assert tolerant["val_mae"] >= strict["val_mae"]
    radius = [fits[t].chosen["coverage_radius_m"]["best_iteration"] for t in (0.0, 0.01)]
    assert radius[1] < radius[0] / 2, radius  # noise-free: a long tail of small improvements


def test_save_load_round_trip_gives_identical_predictions(frames, fitted, tmp_path):
    test = frames[2][FEATURES]
    meta_path = fitted.save(tmp_path)
    meta = json.loads(meta_path.read_text())
    assert meta["data_manifest_sha256"] == "abc" and meta["chosen"] == fitted.chosen
    for target in TARGETS:  # LightGBM's own text format, not a pickle
        assert (tmp_path / FILE_MODEL.format(target)).read_text().startswith("tree")
    loaded = LightGBMBaseline.load(tmp_path, data_manifest_sha256="abc")
    pd.testing.assert_frame_equal(loaded.predict(test), fitted.predict(test), check_exact=True)
    assert loaded.chosen == fitted.chosen


def test_same_seed_gives_the_same_model(frames, fitted):
    train, val, test = frames
    again = LightGBMBaseline(**SETTINGS).fit(train, val, candidates=CANDIDATES)
    pd.testing.assert_frame_equal(again.predict(test[FEATURES]), fitted.predict(test[FEATURES]),
                                  check_exact=True)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in fitted.search_results]
    assert [{k: v for k, v in row.items() if k != "seconds"}
            for row in again.search_results] == strip


def test_default_candidates_come_from_the_default_space_with_the_seed(frames):
    train, val, _ = frames
    model = LightGBMBaseline(seed=5, num_threads=1, num_boost_round=2,
                             early_stopping_rounds=1).fit(train.head(600), val.head(200))
    tried = model.search_table().query("target == 'sinr_db'")
    expected = random_candidates(DEFAULT_SPACE, len(tried), seed=5)
    assert tried[sorted(DEFAULT_SPACE)].to_dict(orient="records") == expected


@pytest.mark.parametrize("spoil, manifest, message", [
    (lambda folder: None, "another data set", "not on the one given"),
    (lambda folder: (folder / FILE_MODEL.format("sinr_db")).write_text("tree\n"), None,
     "differs"),
    (lambda folder: (folder / FILE_META).write_text('{"format": "other"}'), None, "not a D2TL"),
    (lambda folder: (folder / FILE_META).write_text(
        (folder / FILE_META).read_text().replace("lightgbm/2", "lightgbm/1")), None,
     "not a D2TL"),
    (lambda folder: (folder / FILE_META).unlink(), None, "does not exist"),
], ids=["other data set", "changed model file", "foreign json", "older format", "no json"])
def test_load_refuses_a_foreign_or_changed_save(fitted, tmp_path, spoil, manifest, message):
    fitted.save(tmp_path)
    spoil(tmp_path)
    with pytest.raises(ValueError, match=message):
        LightGBMBaseline.load(tmp_path, data_manifest_sha256=manifest)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_threads=0), "num_threads must be a positive integer; got 0"),
    (dict(num_boost_round=1.5), "num_boost_round must be a positive integer; got 1.5"),
    (dict(early_stopping_rounds=0), "early_stopping_rounds must be a positive integer; got 0"),
    (dict(seed=-1), "seed must be a non-negative integer; got -1"),
    (dict(min_improvement=1.0), "min_improvement must be a number in [0, 1); got 1.0"),
    (dict(min_improvement=-0.001), "min_improvement must be a number in [0, 1); got -0.001"),
])
def test_bad_settings_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        LightGBMBaseline(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("space, n_candidates, seed, message", [
    ({}, 4, 0, "space must be a non-empty dict"),
    ([15, 63], 4, 0, "space must be a non-empty dict"),
    ({"max_depth": [3, 9]}, 4, 0, "space holds unknown parameter 'max_depth'"),
    ({"num_leaves": [63]}, 4, 0, "space['num_leaves'] must be a range [low, high]; got [63]"),
    ({"num_leaves": [255, 63]}, 4, 0, "with low ≤ high; got [255, 63]"),
    ({"num_leaves": [1, 63]}, 4, 0,
     "space['num_leaves'] bounds must be an integer in [2, 131072]; got 1"),
    ({"num_leaves": [15.5, 63]}, 4, 0, "must be an integer in [2, 131072]; got 15.5"),
    ({"learning_rate": [0.0, 0.3]}, 4, 0, "must be a number in [0.0001, 1.0]; got 0.0"),
    ({"feature_fraction": [0.5, 1.5]}, 4, 0, "must be a number in [0.05, 1.0]; got 1.5"),
    ({"min_child_samples": [True, 20]}, 4, 0, "must be an integer in [1, 100000]; got True"),
    (DEFAULT_SPACE, 0, 0, "n_candidates must be a positive integer; got 0"),
    (DEFAULT_SPACE, 4, -1, "seed must be a non-negative integer; got -1"),
], ids=["empty", "a list", "unknown parameter", "one bound", "reversed", "below LightGBM's",
        "a fractional count", "zero learning rate", "fraction above 1", "a boolean",
        "no candidates", "negative seed"])
def test_bad_search_space_refused(space, n_candidates, seed, message):
    with pytest.raises(ValueError) as err:
        random_candidates(space, n_candidates, seed)
    assert message in str(err.value)


@pytest.mark.parametrize("candidates, message", [
    ([], "candidates must be a non-empty list"),
    ({"num_leaves": [63, 255]}, "candidates must be a non-empty list"),  # a grid is not a list
    ([{}], "candidates must be a non-empty list"),
    ([{"num_leaves": 63}, {"max_bin": 63}], "candidates[1] holds unknown parameter 'max_bin'"),
    ([{"num_leaves": 63.0}], "candidates[0]['num_leaves'] must be an integer in [2, 131072]; "
                             "got 63.0"),
    ([{"learning_rate": -0.1}], "candidates[0]['learning_rate'] must be a number in "
                                "[0.0001, 1.0]; got -0.1"),
], ids=["empty", "a grid dict", "an empty candidate", "unknown parameter", "float leaves",
        "negative learning rate"])
def test_bad_candidates_refused(frames, candidates, message):
    with pytest.raises(ValueError) as err:
        LightGBMBaseline(**SETTINGS).fit(frames[0], frames[1], candidates=candidates)
    assert message in str(err.value)


def test_the_evaluation_stage_checks_its_space_by_the_same_rule():
    with pytest.raises(ValueError, match=r"lightgbm_space\['num_leaves'\] must be a range"):
        baselines.lightgbm_space("lightgbm_space", {"num_leaves": [63, 255, 1023]})
    assert baselines.lightgbm_space("lightgbm_space", DEFAULT_SPACE) is None


def test_unfitted_model_refuses_to_predict(frames):
    with pytest.raises(ValueError, match="not fitted"):
        LightGBMBaseline().predict(frames[2][FEATURES])


def test_search_on_a_subsample_then_refit_on_every_row(frames):
    train, val, test = frames
    model = LightGBMBaseline(**SETTINGS).fit(train, val, candidates=CANDIDATES, search_rows=800)
    table = model.search_table()
    assert (table["train_rows"] == 800).all()
    for target, chosen in model.chosen.items():
        assert chosen["train_rows"] == len(train) and chosen["refit_s"] > 0
        rows = table[table["target"] == target]
        assert chosen["candidate"] == rows.loc[rows["val_mae"].idxmin(), "candidate"]
        # The refit's own early stopping: its trees and MAE, not the search's.
        assert model.boosters[target].current_iteration() == chosen["best_iteration"]
    again = LightGBMBaseline(**SETTINGS).fit(train, val, candidates=CANDIDATES, search_rows=800)
    pd.testing.assert_frame_equal(model.predict(test[FEATURES]), again.predict(test[FEATURES]),
                                  check_exact=True)


@pytest.mark.parametrize("search_rows", [0, -5, 1.5, True])
def test_bad_search_rows_refused(frames, search_rows):
    with pytest.raises(ValueError, match="search_rows must be a positive integer"):
        LightGBMBaseline(**SETTINGS).fit(frames[0], frames[1], candidates=CANDIDATES,
                                         search_rows=search_rows)
