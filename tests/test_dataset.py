"""Tests of coverage_lib.datasets.dataset: the feature draws of the book's physics page
(book/physics.md), determinism, the shadow fading, the ID/OOD split and the written files with
their MANIFEST.

Expected values come from that page's feature table and Table 7.4.2-1 of 3GPP TR 38.901,
written out here; statistical checks use fixed seeds and loose (≥ 4σ) tolerances.
"""
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from coverage_lib.datasets import dataset
from coverage_lib.core import schema

UMA, UMI, RMA = 0, 1, 2

SPEC_FEATURES = [
    "frequency_ghz", "distance_m", "bs_height_m", "ue_height_m", "tx_power_dbm",
    "antenna_gain_dbi", "bandwidth_mhz", "noise_figure_db", "rain_rate_mmh",
    "water_vapour_gm3", "scenario", "los", "inr_db",
]
SPEC_TARGETS = ["received_power_dbm", "sinr_db", "coverage_radius_m", "coverage_area_km2",
                "qos_score"]
SPEC_ORACLE = ["received_power_median_dbm", "sinr_median_db", "shadow_sigma_db",
               "shadowing_db", "radius_censored"]

# The paper profile's data parameters (params/paper.yaml).
ID_RANGES = {"frequency_ghz": (0.5, 40.0), "rain_rate_mmh": (0.0, 40.0),
             "distance_m": (10.0, 2500.0)}
FRACTIONS = (0.70, 0.15, 0.15)


@pytest.fixture(scope="module")
def big():
    return dataset.generate(200_000, seed=2026)


# ============================================================================================
# Names and order
# ============================================================================================

def test_feature_and_target_names_in_spec_order():
    assert list(schema.FEATURES) == SPEC_FEATURES
    assert list(schema.TARGETS) == SPEC_TARGETS


def test_generated_columns(big):
    assert list(big.columns) == SPEC_FEATURES + SPEC_TARGETS + SPEC_ORACLE
    assert len(big) == 200_000
    assert big["scenario"].dtype.kind == "i" and big["los"].dtype.kind == "i"
    assert big["radius_censored"].dtype == bool
    assert np.all(np.isfinite(big.drop(columns="radius_censored").to_numpy(dtype=float)))


# ============================================================================================
# Feature draws within the spec's ranges
# ============================================================================================
# (column, scenarios, low, high): every row of those scenarios lies in [low, high].
RANGES = [
    ("frequency_ghz", (UMA, UMI), 0.5, 100.0),
    ("frequency_ghz", (RMA,), 0.5, 30.0),
    ("distance_m", (UMA, UMI), 10.0, 5000.0),
    ("distance_m", (RMA,), 10.0, 10000.0),
    ("bs_height_m", (UMA,), 25.0, 25.0),
    ("bs_height_m", (UMI,), 10.0, 10.0),
    ("bs_height_m", (RMA,), 10.0, 150.0),
    ("ue_height_m", (UMA, UMI), 1.5, 22.5),
    ("ue_height_m", (RMA,), 1.0, 10.0),
    ("tx_power_dbm", (UMA, RMA), 40.0, 49.0),
    ("tx_power_dbm", (UMI,), 30.0, 44.0),
    ("antenna_gain_dbi", (UMA, UMI, RMA), 0.0, 25.0),
    ("noise_figure_db", (UMA, UMI, RMA), 5.0, 13.0),
    ("rain_rate_mmh", (UMA, UMI, RMA), 0.0, 150.0),
    ("water_vapour_gm3", (UMA, UMI, RMA), 0.0, 25.0),
    ("inr_db", (UMA, UMI, RMA), -10.0, 20.0),
]


@pytest.mark.parametrize("column, scenarios, low, high", RANGES,
                         ids=[f"{r[0]}-{'/'.join(map(str, r[1]))}" for r in RANGES])
def test_feature_within_spec_range(big, column, scenarios, low, high):
    rows = big[big["scenario"].isin(scenarios)]
    assert len(rows) > 50_000
    v = rows[column].to_numpy()
    assert v.min() >= low and v.max() <= high
    if low < high and column != "rain_rate_mmh":  # a uniform draw fills its range (1 %)
        span = high - low
        if column in ("frequency_ghz", "distance_m"):  # log-uniform
            span, v, low, high = (math.log(high / low), np.log(v), math.log(low),
                                  math.log(high))
        assert v.min() - low < 0.01 * span and high - v.max() < 0.01 * span


@pytest.mark.parametrize("column, scenarios, low, high", [
    ("frequency_ghz", (UMA, UMI), 0.5, 100.0), ("frequency_ghz", (RMA,), 0.5, 30.0),
    ("distance_m", (UMA, UMI), 10.0, 5000.0), ("distance_m", (RMA,), 10.0, 10000.0)])
def test_log_uniform_draws(big, column, scenarios, low, high):
    """Log-uniform: log(v) is uniform, so each quarter of the log range holds 1/4 of rows."""
    v = big.loc[big["scenario"].isin(scenarios), column].to_numpy()
    u = (np.log(v) - math.log(low)) / (math.log(high) - math.log(low))
    counts = np.histogram(u, bins=4, range=(0, 1))[0] / len(u)
    assert np.all(np.abs(counts - 0.25) < 0.01), counts


@pytest.mark.parametrize("column, scenarios, low, high", [
    ("bs_height_m", (RMA,), 10.0, 150.0), ("ue_height_m", (UMA, UMI), 1.5, 22.5),
    ("tx_power_dbm", (UMI,), 30.0, 44.0), ("antenna_gain_dbi", (UMA, UMI, RMA), 0.0, 25.0),
    ("inr_db", (UMA, UMI, RMA), -10.0, 20.0), ("water_vapour_gm3", (UMA, UMI, RMA), 0.0, 25.0)])
def test_uniform_draws(big, column, scenarios, low, high):
    v = big.loc[big["scenario"].isin(scenarios), column].to_numpy()
    counts = np.histogram(v, bins=4, range=(low, high))[0] / len(v)
    assert np.all(np.abs(counts - 0.25) < 0.01), counts


def test_scenarios_equally_likely(big):
    share = np.bincount(big["scenario"], minlength=3) / len(big)
    assert set(np.unique(big["scenario"])) == {0, 1, 2}
    np.testing.assert_allclose(share, 1 / 3, atol=0.006)


def test_bandwidth_from_the_set(big):
    allowed = {5.0, 10.0, 20.0, 40.0, 50.0, 100.0, 200.0, 400.0}
    values, counts = np.unique(big["bandwidth_mhz"], return_counts=True)
    assert set(values) == allowed
    np.testing.assert_allclose(counts / len(big), 1 / 8, atol=0.005)


def test_rain_half_dry_exponential_mean_10_capped(big):
    rain = big["rain_rate_mmh"].to_numpy()
    assert abs(np.mean(rain == 0.0) - 0.5) < 0.006
    wet = rain[rain > 0]
    assert wet.max() <= 150.0
    # exponential with mean 10 (the cap at 150 removes e^-15 of the mass): mean ≈ 10 ± 4σ
    assert abs(wet.mean() - 10.0) < 4 * 10.0 / math.sqrt(len(wet))
    assert abs(np.mean(wet > 10.0) - math.exp(-1.0)) < 0.006


def test_los_is_binary(big):
    assert set(np.unique(big["los"])) == {0, 1}


def los_probability_by_hand(scenario, d, h_ut):
    """38.901 Table 7.4.2-1 (UMa with C'(hUT)), written out independently; capped at 1."""
    d = np.asarray(d, dtype=float)
    umi = np.where(d <= 18, 1.0, 18 / d + np.exp(-d / 36) * (1 - 18 / d))
    c = np.where(h_ut <= 13, 0.0, ((np.clip(h_ut, 13, 23) - 13) / 10) ** 1.5)
    uma = np.where(d <= 18, 1.0, (18 / d + np.exp(-d / 63) * (1 - 18 / d))
                   * (1 + c * 5 / 4 * (d / 100) ** 3 * np.exp(-d / 150)))
    rma = np.where(d <= 10, 1.0, np.exp(-(d - 10) / 1000))
    return np.minimum(np.choose(scenario, [uma, umi, rma]), 1.0)


LOS_GROUPS = [
    ("UMa", lambda g: g["scenario"] == UMA),
    ("UMa hUT > 13 m", lambda g: (g["scenario"] == UMA) & (g["ue_height_m"] > 13)),
    ("UMa hUT <= 13 m", lambda g: (g["scenario"] == UMA) & (g["ue_height_m"] <= 13)),
    ("UMi", lambda g: g["scenario"] == UMI),
    ("RMa", lambda g: g["scenario"] == RMA),
    ("RMa d > 1 km", lambda g: (g["scenario"] == RMA) & (g["distance_m"] > 1000)),
    ("all", lambda g: g["scenario"] >= 0),
]


@pytest.mark.parametrize("name, select", LOS_GROUPS, ids=[g[0] for g in LOS_GROUPS])
def test_los_fraction_matches_table_7_4_2_1(big, name, select):
    g = big[select(big)]
    p = los_probability_by_hand(g["scenario"].to_numpy(), g["distance_m"].to_numpy(),
                                g["ue_height_m"].to_numpy())
    sd = math.sqrt(np.sum(p * (1 - p))) / len(g)
    assert abs(g["los"].mean() - p.mean()) < 4 * sd + 1e-12, (g["los"].mean(), p.mean(), sd)


def test_los_fraction_sees_the_uma_c_prime_term(big):
    """Without C'(hUT) the LOS share of tall UMa UEs near the BS would be much lower."""
    g = big[(big["scenario"] == UMA) & (big["ue_height_m"] > 18)
            & big["distance_m"].between(60, 300)]
    d = g["distance_m"].to_numpy()
    p_without = 18 / d + np.exp(-d / 63) * (1 - 18 / d)
    p_with = los_probability_by_hand(np.zeros(len(g), int), d, g["ue_height_m"].to_numpy())
    sd = math.sqrt(np.sum(p_with * (1 - p_with))) / len(g)
    assert p_with.mean() - p_without.mean() > 10 * sd  # the test can tell them apart
    assert abs(g["los"].mean() - p_with.mean()) < 4 * sd


# ============================================================================================
# Determinism and argument checks
# ============================================================================================

def test_same_seed_bit_identical():
    a = dataset.generate(5000, seed=99)
    b = dataset.generate(5000, seed=99)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for col in a.columns:
        assert a[col].to_numpy().tobytes() == b[col].to_numpy().tobytes(), col
        assert a[col].dtype == b[col].dtype


def test_different_seed_differs():
    a = dataset.generate(5000, seed=99)
    b = dataset.generate(5000, seed=100)
    for col in ["frequency_ghz", "distance_m", "shadowing_db", "received_power_dbm"]:
        assert not np.array_equal(a[col].to_numpy(), b[col].to_numpy()), col


@pytest.mark.parametrize("n", [0, -1, -1000])
def test_generate_rejects_non_positive_n(n):
    with pytest.raises(ValueError, match="n_samples"):
        dataset.generate(n, seed=0)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_generate_tiny_n(n):
    df = dataset.generate(n, seed=0)
    assert len(df) == n and list(df.columns) == SPEC_FEATURES + SPEC_TARGETS + SPEC_ORACLE


# ============================================================================================
# Shadow fading: X ~ N(0, σ_SF²)
# ============================================================================================

@pytest.mark.parametrize("sigma", [None, 4.0, 6.0, 7.82, 8.0])
def test_standardised_shadowing_is_standard_normal(big, sigma):
    g = big if sigma is None else big[big["shadow_sigma_db"] == sigma]
    assert len(g) > 10_000
    z = (g["shadowing_db"] / g["shadow_sigma_db"]).to_numpy()
    n = len(z)
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 4 / math.sqrt(2 * n)
    # Gaussian shape: P(|Z| < 1) = 0.682689, P(|Z| < 2) = 0.954500
    assert abs(np.mean(np.abs(z) < 1) - 0.682689) < 4 * math.sqrt(0.2166 / n)
    assert abs(np.mean(np.abs(z) < 2) - 0.954500) < 4 * math.sqrt(0.0434 / n)


def test_shadowing_independent_of_features(big):
    z = (big["shadowing_db"] / big["shadow_sigma_db"]).to_numpy()
    for col in ["distance_m", "frequency_ghz", "rain_rate_mmh", "inr_db"]:
        r = np.corrcoef(z, np.log1p(big[col].to_numpy() - big[col].min()))[0, 1]
        assert abs(r) < 4 / math.sqrt(len(z)), col


# ============================================================================================
# Split: ID train/val/test and the OOD sets
# ============================================================================================

@pytest.fixture(scope="module")
def small():
    return dataset.generate(20_000, seed=2026)


@pytest.fixture(scope="module")
def indices(small):
    return dataset.split(small, FRACTIONS, ID_RANGES, seed=2026)


def inside(df, col):
    low, high = ID_RANGES[col]
    return df[col].between(low, high).to_numpy()


def test_split_names(indices):
    assert set(indices) == {"train", "val", "test", "ood_frequency", "ood_rain",
                            "ood_distance", "ood_multiple"}


def test_split_partitions_rows(small, indices):
    all_idx = np.concatenate(list(indices.values()))
    assert len(all_idx) == len(small)
    np.testing.assert_array_equal(np.sort(all_idx), np.arange(len(small)))
    for name, idx in indices.items():
        assert np.all(np.diff(idx) > 0), name  # sorted, no repeats
    assert all(len(idx) > 0 for idx in indices.values())


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_id_sets_inside_all_ranges(small, indices, name):
    rows = small.iloc[indices[name]]
    for col in ID_RANGES:
        assert inside(rows, col).all(), col


@pytest.mark.parametrize("name, own", [("ood_frequency", "frequency_ghz"),
                                       ("ood_rain", "rain_rate_mmh"),
                                       ("ood_distance", "distance_m")])
def test_ood_set_beyond_exactly_its_own_range(small, indices, name, own):
    rows = small.iloc[indices[name]]
    assert not inside(rows, own).any()
    for col in ID_RANGES:
        if col != own:
            assert inside(rows, col).all(), col


def test_ood_multiple_beyond_several_ranges(small, indices):
    rows = small.iloc[indices["ood_multiple"]]
    n_out = sum((~inside(rows, col)).astype(int) for col in ID_RANGES)
    assert np.all(n_out >= 2)
    # and every row outside ≥ 2 ranges is there
    n_out_all = sum((~inside(small, col)).astype(int) for col in ID_RANGES)
    assert np.sum(n_out_all >= 2) == len(rows)


def test_split_fractions(small, indices):
    n_id = sum(len(indices[k]) for k in ("train", "val", "test"))
    n_id_expected = np.sum(np.all([inside(small, c) for c in ID_RANGES], axis=0))
    assert n_id == n_id_expected
    for name, frac in zip(("train", "val", "test"), FRACTIONS):
        assert abs(len(indices[name]) - frac * n_id) <= 1.0, name


def test_split_is_seeded(small, indices):
    again = dataset.split(small, FRACTIONS, ID_RANGES, seed=2026)
    other = dataset.split(small, FRACTIONS, ID_RANGES, seed=7)
    for name in indices:
        np.testing.assert_array_equal(again[name], indices[name])
    assert not np.array_equal(other["train"], indices["train"])
    np.testing.assert_array_equal(other["ood_rain"], indices["ood_rain"])  # OOD: no shuffle


# ============================================================================================
# Written files: determinism, MANIFEST, round trip
# ============================================================================================

def sha256_bytes(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_once(folder, n=6000, seed=31):
    df = dataset.generate(n, seed=seed)
    idx = dataset.split(df, FRACTIONS, ID_RANGES, seed=seed)
    stats = dataset.feature_stats(df.iloc[idx["train"]], ID_RANGES)
    dataset.write_dataset(folder, df, idx, stats)
    return df, idx


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    a = tmp_path_factory.mktemp("data_a")
    b = tmp_path_factory.mktemp("data_b")
    df, idx = write_once(a)
    write_once(b)
    return a, b, df, idx


ROW_FILES = ["coverage_training_data"] + [f"{s}_data" for s in
                                           ["train", "val", "test", "ood_frequency", "ood_rain",
                                            "ood_distance", "ood_multiple"]]
EXPECTED_FILES = {"split_indices.json", "feature_stats.json", "fingerprint.json",
                  "MANIFEST.txt"} | \
    {f"{name}.{kind}" for name in ROW_FILES for kind in ("json", "parquet")}


def test_written_files(written):
    a, b, _, _ = written
    for folder in (a, b):
        assert {p.name for p in folder.iterdir()} == EXPECTED_FILES  # no temp files left


def test_same_seed_same_bytes(written):
    a, b, _, _ = written
    for name in sorted(EXPECTED_FILES):
        assert sha256_bytes(a / name) == sha256_bytes(b / name), name


def test_manifest_lists_every_file_with_size_and_sha256(written):
    a, _, _, _ = written
    manifest = dataset.read_manifest(a)
    assert set(manifest) == EXPECTED_FILES - {"MANIFEST.txt"}
    for name, (size, digest) in manifest.items():
        assert size == (a / name).stat().st_size, name
        assert digest == sha256_bytes(a / name), name
    assert dataset.manifest_sha256(a) == sha256_bytes(a / "MANIFEST.txt")


@pytest.mark.parametrize("name", ["train", "val", "test", "ood_frequency", "ood_rain",
                                  "ood_distance", "ood_multiple"])
def test_load_split_round_trip(written, name):
    """Both stored copies give back every value bit for bit, with its type: the Parquet file
    (what load_split reads) and the canonical JSON export."""
    a, _, df, idx = written
    want = df.iloc[idx[name]].reset_index(drop=True)
    assert len(want) > 0
    pd.testing.assert_frame_equal(dataset.load_split(a, name), want, check_exact=True)
    pd.testing.assert_frame_equal(dataset.read_frame(a / f"{name}_data.json"), want,
                                  check_exact=True)


def test_load_split_reads_only_the_columns_asked_for(written):
    a, _, df, idx = written
    got = dataset.load_split(a, "val", ["los", "distance_m"])
    pd.testing.assert_frame_equal(
        got, df.iloc[idx["val"]][["los", "distance_m"]].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"columns \['distance'\] are not in the data set"):
        dataset.load_split(a, "val", ["distance"])


def test_all_rows_file_labels_each_row_with_its_split(written):
    a, _, df, idx = written
    rows = dataset.read_frame(a / "coverage_training_data.json")
    assert len(rows) == len(df)
    assert list(rows.columns) == list(df.columns) + ["split"]
    labels = np.empty(len(df), dtype=object)
    for name, ix in idx.items():
        labels[ix] = name
    np.testing.assert_array_equal(rows["split"].to_numpy(), labels)


def test_indices_and_stats_files(written):
    a, _, df, idx = written
    stored = json.loads((a / "split_indices.json").read_text())
    assert set(stored) == set(idx)
    for name in idx:
        assert stored[name] == idx[name].tolist()
    stats = dataset.load_stats(a)
    train = df.iloc[idx["train"]]
    assert stats["n_rows"] == len(train)
    assert stats["in_distribution_ranges"] == {k: list(v) for k, v in ID_RANGES.items()}
    for col in SPEC_FEATURES:
        v = train[col].to_numpy(dtype=float)
        s = stats["features"][col]
        assert s["mean"] == pytest.approx(np.mean(v), rel=1e-12, abs=1e-12)
        assert s["std"] == pytest.approx(np.std(v), rel=1e-12, abs=1e-12)
        assert (s["min"], s["max"]) == (v.min(), v.max())
    assert set(stats["targets"]) == set(SPEC_TARGETS)


def test_load_split_rejects_unknown_name(written):
    a, _, _, _ = written
    with pytest.raises(ValueError, match="split"):
        dataset.load_split(a, "training")


# ============================================================================================
# Chunked generation (build_files): same files as in memory, memory bounded by one chunk
# ============================================================================================

def test_one_chunk_writes_exactly_the_in_memory_files(tmp_path, written):
    """A data set of at most one chunk is byte for byte the in-memory one, whatever the
    chunk size: the paper profile's files do not change with chunking."""
    a, _, _, _ = written
    for chunk_rows in (6000, 10_000):
        folder = tmp_path / f"chunk{chunk_rows}"
        dataset.build_files(folder, 6000, 31, FRACTIONS, ID_RANGES, chunk_rows=chunk_rows)
        assert (folder / "MANIFEST.txt").read_bytes() == (a / "MANIFEST.txt").read_bytes()
        assert {p.name for p in folder.iterdir()} == EXPECTED_FILES


def test_chunks_are_their_own_streams_and_split_and_stats_cover_them_all(tmp_path):
    folder = tmp_path / "chunked"
    dataset.build_files(folder, 5000, 13, FRACTIONS, ID_RANGES, chunk_rows=2000)
    parts = [dataset.generate_rows(n, dataset.chunk_rng(13, k))
             for k, n in enumerate(dataset.chunk_sizes(5000, 2000))]
    assert [len(p) for p in parts] == [2000, 2000, 1000]
    assert parts[0].equals(dataset.generate(2000, 13))  # the first chunk is the seed's draw
    rows = pd.concat(parts, ignore_index=True)
    idx = dataset.split(rows, FRACTIONS, ID_RANGES, seed=13)
    stats = dataset.feature_stats(rows.iloc[idx["train"]], ID_RANGES)
    assert dataset.load_stats(folder) == json.loads(json.dumps(stats))
    for name in schema.SPLITS + schema.OOD_SPLITS:
        pd.testing.assert_frame_equal(dataset.load_split(folder, name),
                                      rows.iloc[idx[name]].reset_index(drop=True),
                                      check_exact=True)
    everything = dataset.read_frame(folder / "coverage_training_data.json")
    pd.testing.assert_frame_equal(everything.drop(columns="split"), rows, check_exact=True)
    assert dataset.describe_splits(folder, ID_RANGES)["rows"].to_dict() == \
        {name: len(ix) for name, ix in idx.items()}


def test_sample_and_band_rows_read_the_stored_rows(tmp_path, written):
    a, _, df, _ = written
    sample = dataset.sample_rows(a, 500, seed=3)
    assert len(sample) == 500 and sample.equals(dataset.sample_rows(a, 500, seed=3))
    keys = ["distance_m", "frequency_ghz", "shadowing_db"]
    assert len(sample.merge(df, on=keys)) == 500  # every sampled row is a stored row
    assert len(dataset.sample_rows(a, 10 ** 6, seed=3)) == len(df)
    band = dataset.band_rows(a, "frequency_ghz", (3.0, 4.0), limit=50)
    assert len(band) == 50 and band["frequency_ghz"].between(3.0, 4.0).all()
    pd.testing.assert_frame_equal(band, df[df["frequency_ghz"].between(3.0, 4.0)]
                                  .iloc[:50].reset_index(drop=True), check_exact=True)


def test_a_failed_build_leaves_no_manifest_and_no_temporary_file(tmp_path, monkeypatch):
    folder = tmp_path / "failed"
    calls = []
    real = dataset.generate_rows

    def failing(n, rng, *args):
        calls.append(n)
        if len(calls) == 2:
            raise RuntimeError("disk full (simulated)")
        return real(n, rng, *args)

    monkeypatch.setattr(dataset, "generate_rows", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        dataset.build_files(folder, 3000, 5, FRACTIONS, ID_RANGES, chunk_rows=1000)
    assert list(folder.iterdir()) == []


def test_chunk_rows_is_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="chunk_rows"):
        dataset.build_files(tmp_path / "x", 3000, 5, FRACTIONS, ID_RANGES, chunk_rows=0)
    assert not (tmp_path / "x").exists()


def test_indices_file_is_encoded_in_slices_as_json_would_encode_it_whole():
    rng = np.random.default_rng(0)
    indices = {name: np.sort(rng.choice(10 ** 6, n, replace=False))
               for name, n in zip(dataset.SPLIT_NAMES, [40, 0, 7, 1, 13, 0, 22])}
    whole = (json.dumps({k: v.tolist() for k, v in indices.items()}, indent=1, sort_keys=True)
             + "\n").encode()
    assert dataset._indices_bytes(indices, slice_rows=5) == whole
