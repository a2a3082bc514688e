"""How a data set's rows are stored: the canonical JSON export and Parquet, written in chunks.

Every table of rows is written twice. ``<name>.json`` is the canonical export
({"columns": [...], "data": [[...], ...]}, floats in shortest round-trip form). It has the
seed's file names and is what a reader outside Python opens. ``<name>.parquet`` holds the same
rows and types, one row group per chunk; training and evaluation read it, and only the
columns they need (``read_parquet``).

``RowsWriter`` appends chunks of rows to both files, so the memory used does not grow with the
row count: at most one chunk is held, and the JSON is encoded in slices of ``JSON_SLICE``
rows. A file is written under a temporary name and renamed when complete (``finish``), so a
reader never sees half a file. An abandoned writer (``discard``) leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

JSON_SLICE = 100_000  # rows encoded at once: bounds the encoder's Python objects
PARQUET_COMPRESSION = "snappy"


def json_name(name: str) -> str:
    return f"{name}.json"


def parquet_name(name: str) -> str:
    return f"{name}.parquet"


def _json_rows(frame: pd.DataFrame) -> bytes:
    """The rows of ``frame`` as the comma-separated inside of the canonical "data" list."""
    rows = list(zip(*(frame[c].tolist() for c in frame.columns)))
    return json.dumps(rows, separators=(",", ":"), allow_nan=False)[1:-1].encode()


def _json_head(columns) -> bytes:
    return json.dumps({"columns": list(columns)}, separators=(",", ":"))[:-1].encode() + \
        b',"data":['


class _HashedFile:
    """A temporary file beside ``path``, hashed (sha256) as it is written; ``finish`` renames
    it to ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "wb")
        self.sha, self.size = hashlib.sha256(), 0

    # the file-object methods pyarrow's writer calls (pyarrow.PythonFile)
    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.fh.flush()

    @property
    def closed(self) -> bool:
        return self.fh.closed

    def close(self) -> None:  # the writer closing its sink: ``finish`` ends the file
        pass

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.fh.write(view)
        self.sha.update(view)
        self.size += len(view)
        return len(view)

    def finish(self) -> tuple[int, str]:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(self.tmp, 0o666 & ~mask)  # mkstemp creates 0600; give the usual file mode
        os.replace(self.tmp, self.path)
        return self.size, self.sha.hexdigest()

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


class RowsWriter:
    """Append chunks of rows (same columns and dtypes every time) to ``<name>.json`` and
    ``<name>.parquet`` under ``folder``; ``finish()`` returns {file name: (bytes, sha256)}."""

    def __init__(self, folder, name: str, columns):
        self.folder, self.name, self.columns = Path(folder), name, list(columns)
        self._json = _HashedFile(self.folder / json_name(name))
        self._json.write(_json_head(self.columns))
        self._parquet_file = _HashedFile(self.folder / parquet_name(name))
        self._parquet = None
        self._rows = 0

    def append(self, frame: pd.DataFrame) -> None:
        if list(frame.columns) != self.columns:
            raise ValueError(f"{self.name}: columns {list(frame.columns)}, expected "
                             f"{self.columns}")
        frame = frame.reset_index(drop=True)
        for start in range(0, len(frame), JSON_SLICE):
            if self._rows or start:
                self._json.write(b",")
            self._json.write(_json_rows(frame.iloc[start:start + JSON_SLICE]))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            sink = pa.PythonFile(self._parquet_file, mode="w")
            self._parquet = pq.ParquetWriter(sink, table.schema,
                                             compression=PARQUET_COMPRESSION)
        if len(frame):
            self._parquet.write_table(table)
        self._rows += len(frame)

    def finish(self) -> dict:
        if self._parquet is None:
            raise ValueError(f"{self.name}: no chunk was appended (not even an empty one)")
        self._json.write(b"]}")
        self._parquet.close()
        return {self._json.path.name: self._json.finish(),
                self._parquet_file.path.name: self._parquet_file.finish()}

    def discard(self) -> None:
        if self._parquet is not None:
            try:
                self._parquet.close()
            except Exception:  # noqa: BLE001 - the file is thrown away anyway
                pass
        self._json.discard()
        self._parquet_file.discard()


def frame_files(folder, name: str, frame: pd.DataFrame) -> dict:
    """Write one frame as ``<name>.json`` and ``<name>.parquet``; {file: (bytes, sha256)}."""
    writer = RowsWriter(folder, name, frame.columns)
    try:
        writer.append(frame)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def read_parquet(path, columns=None) -> pd.DataFrame:
    """The rows of a Parquet file written here, only ``columns`` (all when None), in order."""
    table = pq.read_table(path, columns=None if columns is None else list(columns))
    return table.to_pandas()


def parquet_rows(path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def iter_parquet(path, columns=None):
    """The rows of a Parquet file, one row group (a written chunk) at a time."""
    handle = pq.ParquetFile(path)
    for group in range(handle.num_row_groups):
        yield handle.read_row_group(group, columns=columns).to_pandas()
