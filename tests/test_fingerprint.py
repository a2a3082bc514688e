"""The data set's fingerprint (``datasets.fingerprint``): last-bit differences agree within its
tolerance, and another seed, another row count or a formula changed by a part in a million
do not, named by split, column and statistic. Small data sets, generated here (seconds)."""
import json

import numpy as np
import pytest

from coverage_lib.core import storage
from coverage_lib.datasets import dataset, fingerprint
from coverage_lib.physics import propagation

RANGES = {"frequency_ghz": [0.5, 40.0], "rain_rate_mmh": [0.0, 40.0],
          "distance_m": [10.0, 2500.0]}


def built(folder, n=2000, seed=7):
    dataset.build_files(folder, n, seed, [0.7, 0.15, 0.15], RANGES)
    return dataset.load_fingerprint(folder)


def frames(folder):
    return {s: storage.read_parquet(folder / dataset.FILE_SPLIT_PARQUET.format(s))
            for s in dataset.SPLIT_NAMES}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    return folder, built(folder)


def test_the_same_seed_gives_the_same_fingerprint_and_it_is_in_the_manifest(reference, tmp_path):
    folder, recorded = reference
    assert dataset.FILE_FINGERPRINT in dataset.read_manifest(folder)
    assert fingerprint.agreement(recorded, built(tmp_path))["state"] == "bit-identical"
    assert set(recorded["splits"]) == set(dataset.SPLIT_NAMES)


def test_one_ulp_in_every_float_cell_agrees_within_the_tolerance(reference):
    folder, recorded = reference
    moved = frames(folder)
    for frame in moved.values():
        for column in frame.columns:
            if frame[column].dtype == np.float64:
                frame[column] = np.nextafter(frame[column].to_numpy(), np.inf)
    found = fingerprint.agreement(recorded, fingerprint.of_frames(moved))
    assert found["state"] == "within-tolerance", found
    assert 0 < found["max_relative"] < 1e-13


@pytest.mark.parametrize("change", ["seed", "rows", "formula"])
def test_a_real_change_is_refused_naming_where(reference, tmp_path, monkeypatch, change):
    _, recorded = reference
    if change == "formula":  # rain attenuation one part in a million stronger
        real = propagation.rain_specific_attenuation_db_per_km
        monkeypatch.setattr(propagation, "rain_specific_attenuation_db_per_km",
                            lambda f, r: real(f, r) * (1 + 1e-6))
    current = built(tmp_path, n=1999 if change == "rows" else 2000,
                    seed=8 if change == "seed" else 7)
    found = fingerprint.agreement(recorded, current)
    assert found["state"] == "different"
    first = found["differences"][0]
    assert first.split("/")[0].split()[0] in dataset.SPLIT_NAMES, first  # names the split
    assert "tolerance 1e-09" in first, first
    if change == "rows":
        assert "rows" in first
    if change == "formula":
        assert found["max_relative"] > 1e-8, found  # three orders beyond last bits' 1e-16


def test_a_data_set_that_stands_for_another_takes_its_identity_until_rewritten(reference,
                                                                               tmp_path):
    folder = tmp_path / "regenerated"
    recorded = built(folder)
    own = dataset.manifest_sha256(folder)
    assert dataset.identity(folder) == own
    dataset.stand_for(folder, "f" * 64, fingerprint.agreement(recorded, recorded))
    assert dataset.identity(folder) == "f" * 64
    assert json.loads((folder / dataset.FILE_IDENTITY).read_text())["manifest_sha256"] == own
    built(folder, seed=8)  # written again: the record no longer applies
    assert dataset.identity(folder) == dataset.manifest_sha256(folder) != own
