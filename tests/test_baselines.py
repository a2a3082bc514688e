"""The LightGBM baseline: it learns, it is deterministic, it round-trips through its own text
format, and it refuses what the networks refuse."""
import json

import numpy as np
import pandas as pd
import pytest

from coverage_lib import dataset
from coverage_lib.baselines import FILE_META, FILE_MODEL, LightGBMBaseline
from coverage_lib.dataset import FEATURES, TARGETS
from coverage_lib.normalization import Normalizer

GRID = {"num_leaves": [15, 63], "learning_rate": [0.1]}
SETTINGS = dict(seed=0, num_threads=1, num_boost_round=300, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def frames():
    df = dataset.generate(3500, seed=41)
    return (df.iloc[:2500].reset_index(drop=True), df.iloc[2500:3000].reset_index(drop=True),
            df.iloc[3000:].reset_index(drop=True))


@pytest.fixture(scope="module")
def fitted(frames):
    train, val, _ = frames
    return LightGBMBaseline(**SETTINGS).fit(train, val, search=GRID, data_manifest_sha256="abc")


def test_learns_far_below_the_mean_predictor(frames, fitted):
    train, _, test = frames
    normalizer = Normalizer.fit(train)
    y_true = normalizer.targets(test).numpy()
    y_pred = normalizer.targets(pd.concat([test[FEATURES], fitted.predict(test[FEATURES])],
                                          axis=1)).numpy()
    mae = np.abs(y_pred - y_true).mean(axis=0)
    mean_predictor_mae = np.abs(y_true - y_true.mean(axis=0)).mean(axis=0)  # ≈ 0.8 each
    assert (mae < 0.4 * mean_predictor_mae).all(), dict(zip(TARGETS, mae / mean_predictor_mae))


def test_search_is_recorded_and_the_best_candidate_kept(fitted):
    table = fitted.search_table()
    assert len(table) == 2 * len(TARGETS)
    assert set(fitted.chosen) == set(TARGETS)
    for target, chosen in fitted.chosen.items():
        rows = table[table["target"] == target]
        assert chosen["val_mae"] == rows["val_mae"].min()
        assert chosen["params"]["num_leaves"] in GRID["num_leaves"]
        assert 1 <= chosen["best_iteration"] <= SETTINGS["num_boost_round"]
        assert fitted.boosters[target].current_iteration() == chosen["best_iteration"]


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
    again = LightGBMBaseline(**SETTINGS).fit(train, val, search={"num_leaves": [15],
                                                                 "learning_rate": [0.1]})
    twice = LightGBMBaseline(**SETTINGS).fit(train, val, search={"num_leaves": [15],
                                                                 "learning_rate": [0.1]})
    pd.testing.assert_frame_equal(again.predict(test[FEATURES]), twice.predict(test[FEATURES]),
                                  check_exact=True)


@pytest.mark.parametrize("spoil, manifest, message", [
    (lambda folder: None, "another data set", "not on the one given"),
    (lambda folder: (folder / FILE_MODEL.format("sinr_db")).write_text("tree\n"), None,
     "differs"),
    (lambda folder: (folder / FILE_META).write_text('{"format": "other"}'), None, "not a D2TL"),
    (lambda folder: (folder / FILE_META).unlink(), None, "does not exist"),
], ids=["other data set", "changed model file", "foreign json", "no json"])
def test_load_refuses_a_foreign_or_changed_save(fitted, tmp_path, spoil, manifest, message):
    fitted.save(tmp_path)
    spoil(tmp_path)
    with pytest.raises(ValueError, match=message):
        LightGBMBaseline.load(tmp_path, data_manifest_sha256=manifest)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_threads=0), "num_threads must be a positive integer; got 0"),
    (dict(num_boost_round=1.5), "num_boost_round must be a positive integer; got 1.5"),
    (dict(seed=-1), "seed must be a non-negative integer; got -1"),
])
def test_bad_settings_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        LightGBMBaseline(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("search", [{}, {"num_leaves": []}, {"num_leaves": 63}])
def test_bad_search_grid_refused(frames, search):
    with pytest.raises(ValueError, match="search must be"):
        LightGBMBaseline(**SETTINGS).fit(frames[0], frames[1], search=search)


def test_unfitted_model_refuses_to_predict(frames):
    with pytest.raises(ValueError, match="not fitted"):
        LightGBMBaseline().predict(frames[2][FEATURES])


def test_search_on_a_subsample_then_refit_on_every_row(frames):
    train, val, test = frames
    model = LightGBMBaseline(**SETTINGS).fit(train, val, search=GRID, search_rows=800)
    table = model.search_table()
    assert (table["train_rows"] == 800).all()
    for target, chosen in model.chosen.items():
        assert chosen["train_rows"] == len(train)
        assert chosen["params"] == dict(table.loc[table[table["target"] == target]["val_mae"]
                                                  .idxmin(), list(GRID)])
    again = LightGBMBaseline(**SETTINGS).fit(train, val, search=GRID, search_rows=800)
    pd.testing.assert_frame_equal(model.predict(test[FEATURES]), again.predict(test[FEATURES]))


@pytest.mark.parametrize("search_rows", [0, -5, 1.5, True])
def test_bad_search_rows_refused(frames, search_rows):
    with pytest.raises(ValueError, match="search_rows must be a positive integer"):
        LightGBMBaseline(**SETTINGS).fit(frames[0], frames[1], search=GRID,
                                         search_rows=search_rows)
