"""The coverage data set: draw 13 link features, compute 5 targets and the oracle columns.

``generate`` follows the book's physics page (``book/physics.md``: the feature table and the
targets); ``split`` separates in-distribution rows (train/val/test) from out-of-distribution
test sets; ``write_dataset`` writes the canonical JSON files and their MANIFEST atomically.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import domain, params, physics
from .io import atomic_write_bytes, atomic_write_text

FEATURES = [
    "frequency_ghz", "distance_m", "bs_height_m", "ue_height_m", "tx_power_dbm",
    "antenna_gain_dbi", "bandwidth_mhz", "noise_figure_db", "rain_rate_mmh",
    "water_vapour_gm3", "scenario", "los", "inr_db",
]
TARGETS = [
    "received_power_dbm", "sinr_db", "coverage_radius_m", "coverage_area_km2", "qos_score",
]
ORACLE_COLUMNS = [
    "received_power_median_dbm", "sinr_median_db", "shadow_sigma_db", "shadowing_db",
    "radius_censored",
]
COLUMNS = FEATURES + TARGETS + ORACLE_COLUMNS

BANDWIDTHS_MHZ = np.array(domain.BANDWIDTHS_MHZ, dtype=float)
# The physical domain each feature is drawn from, over all scenarios (``domain``).
DOMAIN = domain.DOMAIN
# Features whose in-distribution range is a parameter; rows beyond it are OOD test sets.
OOD_FEATURES = {"frequency": "frequency_ghz", "rain": "rain_rate_mmh", "distance": "distance_m"}
SPLITS = ["train", "val", "test"]
OOD_SPLITS = [f"ood_{name}" for name in OOD_FEATURES] + ["ood_multiple"]

FILE_ALL = "coverage_training_data.json"
FILE_SPLIT = "{}_data.json"
FILE_INDICES = "split_indices.json"
FILE_STATS = "feature_stats.json"
FILE_MANIFEST = "MANIFEST.txt"


def _log_uniform(rng, low, high):
    return np.exp(np.log(low) + rng.random(np.shape(high)) * (np.log(high) - np.log(low)))


def draw_features(n_samples: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n_samples`` links over the physical domain (``domain``: the book's feature
    table), in one fixed draw order: the same generator state gives the same links."""
    n, by, common = n_samples, domain.BY_SCENARIO, domain.COMMON
    uma_, umi_, rma_ = domain.UMA, domain.UMI, domain.RMA
    scenario = rng.integers(common["scenario"][0], common["scenario"][1] + 1, n)
    uma, umi, rma = (scenario == s for s in (uma_, umi_, rma_))

    def per_row(feature, bound):  # each row's scenario's bound (0 low, 1 high)
        return np.choose(scenario, [by[feature][s][bound] for s in (uma_, umi_, rma_)])

    frequency = _log_uniform(rng, per_row("frequency_ghz", 0), per_row("frequency_ghz", 1))
    distance = _log_uniform(rng, per_row("distance_m", 0), per_row("distance_m", 1))
    # Fixed in UMa and UMi, drawn in RMa; then each draw's scenarios (one array per range).
    bs_height = np.select([uma, umi], [by["bs_height_m"][uma_][0], by["bs_height_m"][umi_][0]],
                          rng.uniform(*by["bs_height_m"][rma_], n))
    ue_height = np.where(rma, rng.uniform(*by["ue_height_m"][rma_], n),
                         rng.uniform(*by["ue_height_m"][uma_], n))
    tx_power = np.where(umi, rng.uniform(*by["tx_power_dbm"][umi_], n),
                        rng.uniform(*by["tx_power_dbm"][uma_], n))
    gain = rng.uniform(*common["antenna_gain_dbi"], n)
    bandwidth = rng.choice(BANDWIDTHS_MHZ, n)
    noise_figure = rng.uniform(*common["noise_figure_db"], n)
    rainy = rng.random(n) < 1.0 - domain.RAIN_FREE_FRACTION
    rain = np.where(rainy, np.minimum(rng.exponential(domain.RAIN_MEAN_MMH, n),
                                      common["rain_rate_mmh"][1]), 0.0)
    water_vapour = rng.uniform(*common["water_vapour_gm3"], n)
    p_los = physics.los_probability(scenario, distance, ue_height)
    los = (rng.random(n) < p_los).astype(np.int64)
    inr = rng.uniform(*common["inr_db"], n)
    return pd.DataFrame({
        "frequency_ghz": frequency, "distance_m": distance, "bs_height_m": bs_height,
        "ue_height_m": ue_height, "tx_power_dbm": tx_power, "antenna_gain_dbi": gain,
        "bandwidth_mhz": bandwidth, "noise_figure_db": noise_figure, "rain_rate_mmh": rain,
        "water_vapour_gm3": water_vapour, "scenario": scenario.astype(np.int64), "los": los,
        "inr_db": inr,
    })


def generate(n_samples: int, seed: int, edge_sinr_db: float = physics.EDGE_SINR_DB,
             implementation_gap_db: float = physics.IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """Generate ``n_samples`` rows: the 13 FEATURES, the 5 TARGETS and the ORACLE_COLUMNS.

    Received power and SINR carry shadow fading X ~ N(0, σ_SF²) (38.901 Table 7.4.1-1);
    radius and area are noise-free; qos is computed from the noisy SINR. The same seed gives
    bit-identical rows.
    """
    params.positive_int("n_samples", int(n_samples) if isinstance(n_samples, np.integer)
                        else n_samples)
    rng = np.random.default_rng(seed)
    features = draw_features(int(n_samples), rng)
    median = physics.link_budget(features, edge_sinr_db, implementation_gap_db)
    shadowing = median["shadow_sigma_db"].to_numpy() * rng.standard_normal(len(features))
    df = features.copy()
    df["received_power_dbm"] = median["received_power_dbm"] - shadowing
    df["sinr_db"] = median["sinr_db"] - shadowing
    df["coverage_radius_m"] = median["coverage_radius_m"]
    df["coverage_area_km2"] = median["coverage_area_km2"]
    df["qos_score"] = physics.qos_score(df["sinr_db"].to_numpy(), implementation_gap_db)
    df["received_power_median_dbm"] = median["received_power_dbm"]
    df["sinr_median_db"] = median["sinr_db"]
    df["shadow_sigma_db"] = median["shadow_sigma_db"]
    df["shadowing_db"] = shadowing
    df["radius_censored"] = median["radius_censored"]
    return df[COLUMNS]


def split(df: pd.DataFrame, fractions, id_ranges: dict, seed: int) -> dict:
    """Split rows into train/val/test (in-distribution) and the OOD test sets.

    ``id_ranges`` maps each of OOD_FEATURES' columns to its in-distribution (low, high). A row
    outside exactly one range goes to that feature's OOD set, a row outside several to
    ``ood_multiple``; in-distribution rows are shuffled (seeded) and cut by ``fractions``.
    Returns {split name: sorted row indices}.
    """
    outside = {name: ~df[col].between(*id_ranges[col]).to_numpy()
               for name, col in OOD_FEATURES.items()}
    n_outside = np.sum(list(outside.values()), axis=0)
    indices = {}
    in_dist = np.flatnonzero(n_outside == 0)
    order = np.random.default_rng([seed, 1]).permutation(in_dist)
    n_train = int(round(fractions[0] * len(order)))
    n_val = int(round(fractions[1] * len(order)))
    cuts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
            "test": order[n_train + n_val:]}
    for name in SPLITS:
        indices[name] = np.sort(cuts[name])
    for name, mask in outside.items():
        indices[f"ood_{name}"] = np.flatnonzero(mask & (n_outside == 1))
    indices["ood_multiple"] = np.flatnonzero(n_outside > 1)
    return indices


def column_stats(df: pd.DataFrame, columns) -> dict:
    """mean, std (population), min, max of each column, as plain floats."""
    return {c: {"mean": float(df[c].mean()), "std": float(df[c].std(ddof=0)),
                "min": float(df[c].min()), "max": float(df[c].max())} for c in columns}


def feature_stats(train: pd.DataFrame, id_ranges: dict,
                  edge_sinr_db: float = physics.EDGE_SINR_DB,
                  implementation_gap_db: float = physics.IMPLEMENTATION_GAP_DB) -> dict:
    """Normalisation statistics from the training split only, plus the training domain and
    the assumptions the targets were generated with ("physics": edge SINR and implementation
    gap, which every later stage must use: ``physics_assumptions``)."""
    return {"features": column_stats(train, FEATURES), "targets": column_stats(train, TARGETS),
            "n_rows": int(len(train)), "source": "train split",
            "in_distribution_ranges": {k: list(map(float, v)) for k, v in id_ranges.items()},
            "physics": physics.assumptions({"edge_sinr_db": edge_sinr_db,
                                            "implementation_gap_db": implementation_gap_db})}


def physics_assumptions(stats: dict) -> dict:
    """The edge SINR and implementation gap a data set was generated with, from its
    statistics (``load_stats``). Models, rule checks and the oracle take these, not the
    library defaults, so that derived SINR and qos agree with the data. Statistics that do not
    record them (written before they were stored) → ValueError: rerun the data stage."""
    if not isinstance(stats, dict) or "physics" not in stats:
        raise ValueError(f"these data set statistics ({FILE_STATS}) do not record the physics "
                         f"assumptions {list(physics.ASSUMPTIONS)}; rerun the data stage "
                         f"(notebooks/01_data.ipynb)")
    return physics.assumptions(stats["physics"])


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def frame_to_json_bytes(df: pd.DataFrame) -> bytes:
    """Rows as {"columns": [...], "data": [[...], ...]}; floats in shortest round-trip form,
    so reading the file gives back every value bit for bit."""
    rows = list(zip(*(df[c].tolist() for c in df.columns)))
    return json.dumps({"columns": list(df.columns), "data": rows}, separators=(",", ":"),
                      allow_nan=False).encode()


def read_frame(path) -> pd.DataFrame:
    """Read a data file written by ``write_dataset`` (unchecked: ``load_split`` checks it
    against the data set's MANIFEST first)."""
    return frame_from_json_bytes(Path(path).read_bytes())


def frame_from_json_bytes(payload: bytes) -> pd.DataFrame:
    data = json.loads(payload)
    return pd.DataFrame(data["data"], columns=data["columns"])


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_dataset(folder, df: pd.DataFrame, indices: dict, stats: dict) -> Path:
    """Write all rows, each split, the indices, the stats and MANIFEST.txt under ``folder``.

    Every file is written to a temporary name and renamed, MANIFEST last, so a reader never
    sees a half-written file and a MANIFEST always describes complete files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    all_rows = df.assign(split="")
    for name, idx in indices.items():
        all_rows.iloc[idx, all_rows.columns.get_loc("split")] = name
    files = {FILE_ALL: frame_to_json_bytes(all_rows)}
    for name in SPLITS + OOD_SPLITS:
        files[FILE_SPLIT.format(name)] = frame_to_json_bytes(df.iloc[indices[name]])
    files[FILE_INDICES] = _json_bytes({k: v.tolist() for k, v in indices.items()})
    files[FILE_STATS] = _json_bytes(stats)
    return write_files(folder, files)


def write_files(folder, files: dict) -> Path:
    """Write {file name: bytes} under ``folder``, each atomically, then the MANIFEST listing
    them (last: a MANIFEST always describes complete files). Returns the MANIFEST's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE_MANIFEST).unlink(missing_ok=True)  # no reader trusts a half-rewritten set
    lines = ["# D2TL Coverage data set: file, bytes, sha256"]
    for name, payload in files.items():
        atomic_write_bytes(folder / name, payload)
        lines.append(f"{name}  {len(payload)}  {hashlib.sha256(payload).hexdigest()}")
    atomic_write_text(folder / FILE_MANIFEST, "\n".join(lines) + "\n")
    return folder / FILE_MANIFEST


def read_manifest(folder) -> dict:
    """{file name: (bytes, sha256)} from a data set's MANIFEST.txt."""
    rows = {}
    for line in (Path(folder) / FILE_MANIFEST).read_text().splitlines():
        if line and not line.startswith("#"):
            name, size, digest = line.split()
            rows[name] = (int(size), digest)
    return rows


def manifest_sha256(folder) -> str:
    """sha256 of MANIFEST.txt: one checksum that pins every data file (checkpoints store it)."""
    return sha256_file(Path(folder) / FILE_MANIFEST)


def load_split(folder, name: str) -> pd.DataFrame:
    """One split ('train', 'val', 'test' or an OOD set) of the data set in ``folder``."""
    allowed = SPLITS + OOD_SPLITS
    if name not in allowed:
        raise ValueError(f"split must be one of {allowed}; got {name!r}")
    return frame_from_json_bytes(verified_bytes(folder, FILE_SPLIT.format(name)))


def verified_bytes(folder, name: str) -> bytes:
    """The bytes of data file ``name`` in ``folder``, checked against the data set's
    MANIFEST.txt (size and sha256). A file that differs, is missing or is not listed →
    ValueError naming the file: it changed after the data stage wrote it."""
    folder = Path(folder)
    if not (folder / FILE_MANIFEST).is_file():
        raise ValueError(f"{folder} holds no {FILE_MANIFEST}: not a data set written by the "
                         f"data stage (notebooks/01_data.ipynb); run it first")
    manifest = read_manifest(folder)
    path = folder / name
    if name not in manifest:
        raise ValueError(f"{path} is not listed in {folder / FILE_MANIFEST}")
    if not path.is_file():
        raise ValueError(f"{path} is missing from the data set ({FILE_MANIFEST} lists it); "
                         f"rerun the data stage")
    payload = path.read_bytes()
    size, digest = manifest[name]
    actual = hashlib.sha256(payload).hexdigest()
    if len(payload) != size or actual != digest:
        raise ValueError(f"{path} does not match the data set's {FILE_MANIFEST}: "
                         f"{len(payload)} bytes, sha256 {actual[:12]}…, where the MANIFEST "
                         f"says {size} bytes, sha256 {digest[:12]}…; the file changed after "
                         f"the data stage wrote it: rerun the data stage")
    return payload


def load_stats(folder) -> dict:
    """The training-split statistics (``feature_stats.json``), checked against the MANIFEST."""
    return json.loads(verified_bytes(folder, FILE_STATS))


def build(n_samples: int, seed: int, split_fractions, id_ranges: dict,
          edge_sinr_db: float = physics.EDGE_SINR_DB,
          implementation_gap_db: float = physics.IMPLEMENTATION_GAP_DB):
    """Generate, split and compute the training statistics: (rows, {split: indices}, stats).

    ``stats`` records ``edge_sinr_db`` and ``implementation_gap_db`` under "physics"."""
    df = generate(n_samples, seed, edge_sinr_db, implementation_gap_db)
    indices = split(df, split_fractions, id_ranges, seed)
    stats = feature_stats(df.iloc[indices["train"]], id_ranges, edge_sinr_db,
                          implementation_gap_db)
    return df, indices, stats


def ood_ranges(id_ranges: dict) -> dict:
    """{column: the parts of its physical domain outside its in-distribution range}."""
    out = {}
    for column, (low, high) in id_ranges.items():
        d_low, d_high = DOMAIN[column]
        parts = ([f"[{d_low:g}, {low:g})"] if low > d_low else []) + \
            ([f"({high:g}, {d_high:g}]"] if high < d_high else [])
        out[column] = " ∪ ".join(parts) or "none"
    return out


def range_table(id_ranges: dict) -> pd.DataFrame:
    """Per OOD-controlled feature: its in-distribution range and the rest of its physical
    domain, the out-of-distribution part."""
    ood = ood_ranges(id_ranges)
    return pd.DataFrame({"in distribution": {c: f"[{lo:g}, {hi:g}]"
                                             for c, (lo, hi) in id_ranges.items()},
                         "out of distribution": ood})


def describe_splits(df: pd.DataFrame, indices: dict, id_ranges: dict) -> pd.DataFrame:
    """Rows per split and the range of each OOD-controlled feature in it."""
    rows = []
    for name in SPLITS + OOD_SPLITS:
        part = df.iloc[indices[name]]
        row = {"split": name, "rows": len(part)}
        for col in id_ranges:
            row[col] = (f"{part[col].min():.4g} – {part[col].max():.4g}" if len(part) else "–")
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")
