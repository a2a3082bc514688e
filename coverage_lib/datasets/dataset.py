"""The coverage data set: draw 13 link features, compute 5 targets and the oracle columns.

``generate`` follows the book's physics page (``book/physics.md``: the feature table and the
targets); ``split`` separates in-distribution rows (train/val/test) from out-of-distribution
test sets; ``build_files`` generates, splits and writes a data set in chunks of rows, so its
memory does not grow with the row count; ``write_dataset`` writes one in memory. Every table
of rows is stored as the canonical JSON export and as Parquet (``storage``), each file
atomically, with a MANIFEST of sizes and sha256 written last. ``load_split`` reads the Parquet
file, only the columns asked for.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import fingerprint
from ..core import domain, storage, validation
from ..physics import propagation
from ..core.io import atomic_write_bytes, atomic_write_text, sha256_file
from ..physics.sampling import draw_features
from ..core.schema import COLUMNS, FEATURES, OOD_FEATURES, OOD_SPLITS, SPLITS, TARGETS

# The physical domain each feature is drawn from, over all scenarios (``domain``).
DOMAIN = domain.DOMAIN
# The data stage's parameters (notebooks/01_data.ipynb), each with its rule.
PARAMETERS = {
    "n_samples": validation.positive_int,
    "seed": validation.non_negative_int,
    "split_fractions": validation.fractions,
    "id_frequency_ghz": validation.range_within(*domain.DOMAIN["frequency_ghz"]),
    "id_rain_rate_mmh": validation.range_within(*domain.DOMAIN["rain_rate_mmh"]),
    "id_distance_m": validation.range_within(*domain.DOMAIN["distance_m"]),
    "edge_sinr_db": validation.number,
    "implementation_gap_db": validation.number,
    "n_plot_rows": validation.positive_int,
    "chunk_rows": validation.positive_int,
}

ROWS_ALL = "coverage_training_data"  # every row, with its split; stored as .json and .parquet
ROWS_SPLIT = "{}_data"
FILE_ALL = storage.json_name(ROWS_ALL)
FILE_SPLIT = storage.json_name(ROWS_SPLIT)
FILE_ALL_PARQUET = storage.parquet_name(ROWS_ALL)
FILE_SPLIT_PARQUET = storage.parquet_name(ROWS_SPLIT)
FILE_INDICES = "split_indices.json"
FILE_STATS = "feature_stats.json"
FILE_MANIFEST = "MANIFEST.txt"
FILE_FINGERPRINT = "fingerprint.json"  # the splits' ``fingerprint``, listed in the MANIFEST
# Beside a regenerated data set whose fingerprint agrees with the one an earlier run recorded
# (another CPU: the last bits differ): the identity it stands for (``identity``). Not listed in
# the MANIFEST; valid only beside the MANIFEST it names.
FILE_IDENTITY = "IDENTITY.json"
# Rows generated at once by ``build_files``: the paper profile's 10⁶ rows are one chunk.
CHUNK_ROWS = 1_000_000


def generate(n_samples: int, seed: int, edge_sinr_db: float = propagation.EDGE_SINR_DB,
             implementation_gap_db: float = propagation.IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """Generate ``n_samples`` rows: the 13 FEATURES, the 5 TARGETS and the ORACLE_COLUMNS.

    Received power and SINR carry shadow fading X ~ N(0, σ_SF²) (38.901 Table 7.4.1-1);
    radius and area are noise-free; qos is computed from the noisy SINR. The same seed gives
    bit-identical rows.
    """
    validation.positive_int("n_samples", int(n_samples) if isinstance(n_samples, np.integer)
                        else n_samples)
    return generate_rows(int(n_samples), np.random.default_rng(seed), edge_sinr_db,
                         implementation_gap_db)


def generate_rows(n_samples: int, rng: np.random.Generator,
                  edge_sinr_db: float = propagation.EDGE_SINR_DB,
                  implementation_gap_db: float = propagation.IMPLEMENTATION_GAP_DB) -> pd.DataFrame:
    """``generate``'s rows, drawn from ``rng`` (features first, then shadow fading)."""
    features = draw_features(n_samples, rng)
    median = propagation.link_budget(features, edge_sinr_db, implementation_gap_db)
    shadowing = median["shadow_sigma_db"].to_numpy() * rng.standard_normal(len(features))
    df = features.copy()
    df["received_power_dbm"] = median["received_power_dbm"] - shadowing
    df["sinr_db"] = median["sinr_db"] - shadowing
    df["coverage_radius_m"] = median["coverage_radius_m"]
    df["coverage_area_km2"] = median["coverage_area_km2"]
    df["qos_score"] = propagation.qos_score(df["sinr_db"].to_numpy(), implementation_gap_db)
    df["received_power_median_dbm"] = median["received_power_dbm"]
    df["sinr_median_db"] = median["sinr_db"]
    df["shadow_sigma_db"] = median["shadow_sigma_db"]
    df["shadowing_db"] = shadowing
    df["radius_censored"] = median["radius_censored"]
    return df[COLUMNS]


def chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    """The generator of chunk ``chunk`` of a data set: the first draws from
    ``default_rng(seed)``, exactly as ``generate(n, seed)`` does (a data set of at most one
    chunk is the same whatever the chunk size); chunk k ≥ 1 from ``default_rng([seed, 2, k])``,
    a stream independent of the others."""
    return np.random.default_rng(seed if chunk == 0 else [seed, 2, chunk])


def chunk_sizes(n_samples: int, chunk_rows: int) -> list[int]:
    return [min(chunk_rows, n_samples - start) for start in range(0, n_samples, chunk_rows)]


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


def column_stats(df, columns) -> dict:
    """mean, std (population), min, max of each column, as plain floats. ``df`` is a frame
    or a function giving one column's Series (a file read a column at a time)."""
    column = df if callable(df) else df.__getitem__
    out = {}
    for c in columns:
        values = column(c)
        out[c] = {"mean": float(values.mean()), "std": float(values.std(ddof=0)),
                  "min": float(values.min()), "max": float(values.max())}
    return out


def feature_stats(train: pd.DataFrame | None, id_ranges: dict,
                  edge_sinr_db: float = propagation.EDGE_SINR_DB,
                  implementation_gap_db: float = propagation.IMPLEMENTATION_GAP_DB,
                  columns=None, n_rows: int | None = None) -> dict:
    """Normalisation statistics from the training split only, plus the training domain and
    the assumptions the targets were generated with ("physics": edge SINR and implementation
    gap, which every later stage must use: ``physics_assumptions``). Given ``columns`` (a
    function: column name → Series) and ``n_rows`` instead of ``train``, the columns are read
    one at a time."""
    source = train if columns is None else columns
    return {"features": column_stats(source, FEATURES),
            "targets": column_stats(source, TARGETS),
            "n_rows": int(len(train) if n_rows is None else n_rows), "source": "train split",
            "in_distribution_ranges": {k: list(map(float, v)) for k, v in id_ranges.items()},
            "physics": propagation.assumptions({"edge_sinr_db": edge_sinr_db,
                                            "implementation_gap_db": implementation_gap_db})}


def physics_assumptions(stats: dict) -> dict:
    """The edge SINR and implementation gap a data set was generated with, from its
    statistics (``load_stats``). Models, rule checks and the oracle take these, not the
    library defaults, so that derived SINR and qos agree with the data. Statistics that do not
    record them (written before they were stored) → ValueError: rerun the data stage."""
    if not isinstance(stats, dict) or "physics" not in stats:
        raise ValueError(f"these data set statistics ({FILE_STATS}) do not record the physics "
                         f"assumptions {list(propagation.ASSUMPTIONS)}; rerun the data stage "
                         f"(notebooks/01_data.ipynb)")
    return propagation.assumptions(stats["physics"])


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def read_frame(path) -> pd.DataFrame:
    """Read a canonical JSON data file written by ``write_dataset`` (unchecked: ``load_split``
    checks the Parquet copy against the data set's MANIFEST first)."""
    data = json.loads(Path(path).read_bytes())
    return pd.DataFrame(data["data"], columns=data["columns"])


SPLIT_NAMES = SPLITS + OOD_SPLITS


def split_labels(indices: dict, n_rows: int) -> np.ndarray:
    """Each row's split as a code (int8): its position in SPLIT_NAMES (every row is in
    exactly one split). One byte per row, whatever the row count."""
    labels = np.full(n_rows, -1, dtype=np.int8)
    for name, idx in indices.items():
        labels[np.asarray(idx, dtype=np.int64)] = SPLIT_NAMES.index(name)
    return labels


def _write_rows(folder, chunks) -> dict:
    """Stream ``chunks`` — (rows, their split labels) in row order — to the all-rows file
    (with a "split" column) and each split's file, JSON and Parquet. Returns the files'
    {name: (bytes, sha256)} in MANIFEST order. A failure leaves no temporary file behind."""
    writers = {ROWS_ALL: storage.RowsWriter(folder, ROWS_ALL, COLUMNS + ["split"])}
    for name in SPLITS + OOD_SPLITS:
        writers[name] = storage.RowsWriter(folder, ROWS_SPLIT.format(name), COLUMNS)
    try:
        for rows, labels in chunks:
            writers[ROWS_ALL].append(rows.assign(split=np.array(SPLIT_NAMES)[labels]))
            for code, name in enumerate(SPLIT_NAMES):
                writers[name].append(rows[labels == code])
        entries = {}
        for writer in writers.values():
            entries.update(writer.finish())
        return entries
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise


def write_dataset(folder, df: pd.DataFrame, indices: dict, stats: dict) -> Path:
    """Write all rows, each split, the indices, the stats and MANIFEST.txt under ``folder``.

    Every file is written to a temporary name and renamed, MANIFEST last, so a reader never
    sees a half-written file and a MANIFEST always describes complete files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE_MANIFEST).unlink(missing_ok=True)  # no reader trusts a half-rewritten set
    entries = _write_rows(folder, [(df[COLUMNS], split_labels(indices, len(df)))])
    return write_files(folder, {FILE_INDICES: _indices_bytes(indices),
                                FILE_STATS: _json_bytes(stats)}, written=entries)


def _indices_bytes(indices: dict, slice_rows: int = 1_000_000) -> bytes:
    """``_json_bytes`` of {split: its indices as a list}, byte for byte, encoded
    ``slice_rows`` indices at a time (no Python list of every index)."""
    parts = []
    for name in sorted(indices):
        idx = np.asarray(indices[name], dtype=np.int64)
        if not len(idx):
            parts.append(f' "{name}": []'.encode())
            continue
        body = ",\n".join(",\n".join(f"  {i}" for i in idx[at:at + slice_rows].tolist())
                          for at in range(0, len(idx), slice_rows))
        parts.append(f' "{name}": [\n'.encode() + body.encode() + b"\n ]")
    return b"{\n" + b",\n".join(parts) + b"\n}\n"


def build_files(folder, n_samples: int, seed: int, split_fractions, id_ranges: dict,
                edge_sinr_db: float = propagation.EDGE_SINR_DB,
                implementation_gap_db: float = propagation.IMPLEMENTATION_GAP_DB,
                chunk_rows: int = CHUNK_ROWS) -> Path:
    """Generate, split and write a data set of ``n_samples`` rows under ``folder``, drawing
    ``chunk_rows`` rows at a time (``chunk_rng``). Returns the MANIFEST's path.

    The first pass draws each chunk's features and keeps only the three columns that decide
    the split; the second generates each chunk whole and streams it to the files. Memory
    thus holds one chunk, the split's indices and those three columns, whatever the row count.
    The statistics are computed from the written training split, one column at a time. With
    ``n_samples ≤ chunk_rows`` the files are byte for byte those of
    ``write_dataset(folder, *build(n_samples, seed, ...))``.
    """
    validation.positive_int("n_samples", n_samples)
    validation.positive_int("chunk_rows", chunk_rows)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE_MANIFEST).unlink(missing_ok=True)  # no reader trusts a half-rewritten set
    sizes = chunk_sizes(n_samples, chunk_rows)
    deciding = pd.concat([draw_features(n, chunk_rng(seed, k))[list(id_ranges)]
                          for k, n in enumerate(sizes)], ignore_index=True)
    indices = split(deciding, split_fractions, id_ranges, seed)
    del deciding
    labels = split_labels(indices, n_samples)
    starts = np.cumsum([0] + sizes)

    def chunks():
        for k, n in enumerate(sizes):
            rows = generate_rows(n, chunk_rng(seed, k), edge_sinr_db, implementation_gap_db)
            yield rows, labels[starts[k]:starts[k] + n]

    entries = _write_rows(folder, chunks())
    train = folder / FILE_SPLIT_PARQUET.format("train")
    stats = feature_stats(None, id_ranges, edge_sinr_db, implementation_gap_db,
                          columns=lambda c: storage.read_parquet(train, [c])[c],
                          n_rows=len(indices["train"]))
    return write_files(folder, {FILE_INDICES: _indices_bytes(indices),
                                FILE_STATS: _json_bytes(stats)}, written=entries)


def write_files(folder, files: dict, written: dict | None = None) -> Path:
    """Write {file name: bytes} under ``folder``, each atomically, then the MANIFEST listing
    them after the files already ``written`` ({name: (bytes, sha256)}), last: a MANIFEST
    always describes complete files. Where every split's Parquet file is among ``written``,
    their ``fingerprint`` is written too. Returns the MANIFEST's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE_MANIFEST).unlink(missing_ok=True)  # no reader trusts a half-rewritten set
    (folder / FILE_IDENTITY).unlink(missing_ok=True)
    entries = dict(written or {})
    for name, payload in files.items():
        atomic_write_bytes(folder / name, payload)
        entries[name] = (len(payload), hashlib.sha256(payload).hexdigest())
    splits = {s: FILE_SPLIT_PARQUET.format(s) for s in SPLIT_NAMES}
    if all(name in entries for name in splits.values()):
        payload = _json_bytes(fingerprint.of_frames(
            {s: storage.read_parquet(folder / name) for s, name in splits.items()}))
        atomic_write_bytes(folder / FILE_FINGERPRINT, payload)
        entries[FILE_FINGERPRINT] = (len(payload), hashlib.sha256(payload).hexdigest())
    lines = ["# D2TL Coverage data set: file, bytes, sha256"]
    lines += [f"{name}  {size}  {digest}" for name, (size, digest) in entries.items()]
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
    """sha256 of MANIFEST.txt: one checksum that pins every data file's bytes."""
    return sha256_file(Path(folder) / FILE_MANIFEST)


def identity(folder) -> str:
    """The data set's identity, which checkpoints, results and replicate data sets record:
    the sha256 of its MANIFEST, or, where this data set was regenerated on another CPU and its
    fingerprint agreed with the one recorded for an earlier generation (``stand_for``), that
    generation's identity."""
    folder = Path(folder)
    own = manifest_sha256(folder)
    path = folder / FILE_IDENTITY
    if path.is_file():
        found = json.loads(path.read_text())
        if found.get("manifest_sha256") == own:
            return found["identity"]
    return own


def stand_for(folder, recorded_identity: str, agreement: dict) -> Path:
    """Record that the data set in ``folder`` (its present MANIFEST) stands for the one of
    ``recorded_identity``: their fingerprints agree within tolerance (``agreement``, from
    ``fingerprint.agreement``)."""
    folder = Path(folder)
    path = folder / FILE_IDENTITY
    atomic_write_text(path, json.dumps({
        "manifest_sha256": manifest_sha256(folder), "identity": recorded_identity,
        "agreement": {k: v for k, v in agreement.items() if k != "differences"}},
        indent=1) + "\n")
    return path


def load_fingerprint(folder) -> dict | None:
    """The data set's ``fingerprint`` (checked against its MANIFEST); None for a data set
    written without one."""
    if FILE_FINGERPRINT not in read_manifest(folder):
        return None
    return json.loads(verified_bytes(folder, FILE_FINGERPRINT))


def load_split(folder, name: str, columns=None) -> pd.DataFrame:
    """One split ('train', 'val', 'test' or an OOD set) of the data set in ``folder``, read
    from its Parquet file (checked against the MANIFEST): only ``columns`` (all when None)."""
    allowed = SPLITS + OOD_SPLITS
    if name not in allowed:
        raise ValueError(f"split must be one of {allowed}; got {name!r}")
    if columns is not None:
        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            raise ValueError(f"columns {unknown} are not in the data set; allowed: {COLUMNS}")
    return storage.read_parquet(verified_path(folder, FILE_SPLIT_PARQUET.format(name)), columns)


def verified_bytes(folder, name: str) -> bytes:
    """The bytes of data file ``name`` in ``folder``, checked against the data set's
    MANIFEST.txt (size and sha256). A file that differs, is missing or is not listed →
    ValueError naming the file: it changed after the data stage wrote it."""
    path = _listed(folder, name)
    payload = path.read_bytes()
    _check(folder, name, len(payload), hashlib.sha256(payload).hexdigest())
    return payload


def verified_path(folder, name: str) -> Path:
    """``verified_bytes``'s check, reading the file in blocks: its path once it matches."""
    path = _listed(folder, name)
    _check(folder, name, path.stat().st_size, sha256_file(path))
    return path


def _listed(folder, name: str) -> Path:
    folder = Path(folder)
    if not (folder / FILE_MANIFEST).is_file():
        raise ValueError(f"{folder} holds no {FILE_MANIFEST}: not a data set written by the "
                         f"data stage (notebooks/01_data.ipynb); run it first")
    path = folder / name
    if name not in read_manifest(folder):
        raise ValueError(f"{path} is not listed in {folder / FILE_MANIFEST} (a data set "
                         f"written before it was stored): rerun the data stage")
    if not path.is_file():
        raise ValueError(f"{path} is missing from the data set ({FILE_MANIFEST} lists it); "
                         f"rerun the data stage")
    return path


def _check(folder, name: str, size: int, digest: str) -> None:
    path = Path(folder) / name
    listed_size, listed = read_manifest(folder)[name]
    if size != listed_size or digest != listed:
        raise ValueError(f"{path} does not match the data set's {FILE_MANIFEST}: "
                         f"{size} bytes, sha256 {digest[:12]}…, where the MANIFEST "
                         f"says {listed_size} bytes, sha256 {listed[:12]}…; the file changed "
                         f"after the data stage wrote it: rerun the data stage")


def load_stats(folder) -> dict:
    """The training-split statistics (``feature_stats.json``), checked against the MANIFEST."""
    return json.loads(verified_bytes(folder, FILE_STATS))


def build(n_samples: int, seed: int, split_fractions, id_ranges: dict,
          edge_sinr_db: float = propagation.EDGE_SINR_DB,
          implementation_gap_db: float = propagation.IMPLEMENTATION_GAP_DB):
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


def describe_splits(folder, id_ranges: dict) -> pd.DataFrame:
    """Rows per split of the data set in ``folder`` and the range of each OOD-controlled
    feature in it (read one split and only those columns at a time)."""
    rows = []
    for name in SPLITS + OOD_SPLITS:
        part = load_split(folder, name, list(id_ranges))
        row = {"split": name, "rows": len(part)}
        for col in id_ranges:
            row[col] = (f"{part[col].min():.4g} – {part[col].max():.4g}" if len(part) else "–")
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def sample_rows(folder, n_rows: int, seed: int) -> pd.DataFrame:
    """``n_rows`` rows drawn without replacement (seeded) from every row of the data set in
    ``folder``, read one written chunk at a time (all rows when it has fewer)."""
    path = verified_path(folder, FILE_ALL_PARQUET)
    total = storage.parquet_rows(path)
    keep = np.sort(np.random.default_rng(seed).choice(total, min(n_rows, total), replace=False))
    parts, start = [], 0
    for chunk in storage.iter_parquet(path, COLUMNS):
        wanted = keep[(keep >= start) & (keep < start + len(chunk))] - start
        parts.append(chunk.iloc[wanted])
        start += len(chunk)
    return pd.concat(parts, ignore_index=True)


def band_rows(folder, column: str, band, limit: int) -> pd.DataFrame:
    """Up to ``limit`` rows (the first, in row order) of the data set in ``folder`` whose
    ``column`` lies in ``band`` (inclusive), read one written chunk at a time."""
    if column not in COLUMNS:
        raise ValueError(f"column must be one of {COLUMNS}; got {column!r}")
    parts, kept = [], 0
    for chunk in storage.iter_parquet(verified_path(folder, FILE_ALL_PARQUET), COLUMNS):
        part = chunk[chunk[column].between(*band)].iloc[:limit - kept]
        parts.append(part)
        kept += len(part)
        if kept >= limit:
            break
    return pd.concat(parts, ignore_index=True)
