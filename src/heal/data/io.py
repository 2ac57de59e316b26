"""Record files: read and write CSV, JSONL and Parquet, atomically.

The output format follows the file extension. Every write goes to a temporary file in the destination folder and is
renamed into place only when complete, so a failed or interrupted run never leaves a half-written output. Each output
gets a sidecar `<output>.meta.json` carrying where the records came from (`source`, `credentialed`), the resolved
config and the run summary; the PHI guard reads `credentialed` from it.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from heal.errors import HealError

OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")
INPUT_FORMATS = (".csv", ".csv.gz", ".jsonl", ".json", ".parquet")

# CSV fields hold whole clinical notes; the csv module's default 128 KiB cap is too small for some.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def suffix_of(path: str | Path) -> str:
    """The format-bearing suffix: '.csv.gz' counts as one suffix."""
    name = Path(path).name.lower()
    for suffix in sorted(INPUT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return Path(path).suffix.lower()


def metadata_path(path: str | Path) -> Path:
    return Path(str(path) + ".meta.json")


def check_output_path(path: str | Path, formats: Iterable[str] = OUTPUT_FORMATS) -> Path:
    """Fail early, before any work, if `path` cannot receive an output."""
    path = Path(path)
    formats = tuple(formats)
    if suffix_of(path) not in formats:
        raise HealError(f"{path}: unsupported output extension; use one of {', '.join(formats)}")
    if not path.parent.is_dir():
        raise HealError(f"{path}: folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise HealError(f"{path}: is a folder; give a file name ending in {', '.join(formats)}")
    return path


def check_input_path(path: str | Path, what: str = "input") -> Path:
    path = Path(path)
    if not path.exists():
        raise HealError(f"{path}: {what} file not found; check --input_path")
    if path.is_dir():
        raise HealError(f"{path}: is a folder; give the {what} file itself")
    return path


def _temp_beside(path: Path) -> Path:
    """An empty temporary file in `path`'s folder (same file system, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final file should get the usual permissions
    return Path(tmp)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block finishes without error."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


class RecordWriter:
    """Write record batches to one CSV/JSONL/Parquet file; the file appears only on `commit()`.

    Columns are fixed by the first batch (later records may omit a column, never add one).
    Use as a context manager: leaving the block with an exception discards everything written.
    """

    def __init__(self, path: str | Path, metadata: dict | None = None):
        self.path = check_output_path(path)
        self.metadata = dict(metadata or {})
        self.format = suffix_of(self.path)
        self.tmp = _temp_beside(self.path)
        self.columns: list[str] | None = None
        self.count = 0
        self._file = None
        self._csv = None
        self._parquet = None
        self._schema = None

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        if self.columns is None:
            self.columns = list(dict.fromkeys(key for record in records for key in record))
            self._open(records)
        unknown = set().union(*(r.keys() for r in records)) - set(self.columns)
        if unknown:
            raise ValueError(f"records gained columns {sorted(unknown)} after the first batch")
        rows = [{c: r.get(c) for c in self.columns} for r in records]
        if self.format == ".csv":
            self._csv.writerows([["" if r[c] is None else r[c] for c in self.columns] for r in rows])
        elif self.format == ".jsonl":
            self._file.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            import pyarrow as pa

            self._parquet.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        self.count += len(rows)

    def _open(self, first_batch: list[dict]) -> None:
        if self.format == ".csv":
            self._file = open(self.tmp, "w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(self.columns)
        elif self.format == ".jsonl":
            self._file = open(self.tmp, "w", encoding="utf-8")
        else:
            self._open_parquet(first_batch)

    def _open_parquet(self, first_batch: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Each column's type is that of its first non-null value; an all-null column is a string column.
        types = {bool: pa.bool_(), int: pa.int64(), float: pa.float64()}
        fields = []
        for column in self.columns:
            value = next((r[column] for r in first_batch if r.get(column) is not None), "")
            fields.append(pa.field(column, types.get(type(value), pa.string())))
        static = {k: v for k, v in self.metadata.items() if k in ("source", "credentialed", "dataset")}
        self._schema = pa.schema(fields, metadata={"heal": json.dumps(static)})
        self._parquet = pq.ParquetWriter(self.tmp, self._schema)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._parquet is not None:
            self._parquet.close()
        self._file = self._parquet = None

    def commit(self, extra_metadata: dict | None = None) -> None:
        """Finish the file and move it (and its `.meta.json`) into place."""
        if self.columns is None:  # nothing written: still produce a well-formed empty file
            self.columns = []
            self._open([])
        self._close()
        self.metadata.update(extra_metadata or {})
        self.metadata.setdefault("records", self.count)
        self.metadata.setdefault("columns", self.columns)
        write_json(metadata_path(self.path), self.metadata)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # An unhandled error (or a forgotten commit) must leave nothing behind.
        self.abort()


def write_records(path: str | Path, records: list[dict], metadata: dict | None = None) -> Path:
    with RecordWriter(path, metadata) as writer:
        writer.write(records)
        writer.commit()
    return writer.path


def read_records(path: str | Path) -> list[dict]:
    """Read a record file (.csv[.gz], .jsonl, .json list, .parquet) into a list of dicts.

    CSV values stay strings (no NaN, no type guessing) so IDs such as PMIDs keep their leading digits.
    """
    path = check_input_path(path)
    fmt = suffix_of(path)
    try:
        if fmt in (".csv", ".csv.gz"):
            import pandas as pd

            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="strict").to_dict("records")
        if fmt == ".jsonl":
            with open(path, encoding="utf-8") as f:
                return [_json_line(line, path, i) for i, line in enumerate(f, 1) if line.strip()]
        if fmt == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise HealError(f"{path}: expected a JSON list of records (objects); use .jsonl for one per line")
            return data
        if fmt == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except UnicodeDecodeError as e:
        raise HealError(f"{path}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise HealError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
    except HealError:
        raise
    except Exception as e:  # pandas/pyarrow parser errors
        if type(e).__name__ == "EmptyDataError":
            raise HealError(f"{path}: the file is empty; it needs a header row and records") from None
        raise HealError(f"{path}: cannot be read as {fmt}: {str(e).splitlines()[0]}") from None
    raise HealError(f"{path}: unsupported input extension; use one of {', '.join(INPUT_FORMATS)}")


def _json_line(line: str, path: Path, lineno: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise HealError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise HealError(f"{path}: line {lineno} is not a JSON object")
    return record


def read_metadata(path: str | Path) -> dict:
    """The `.meta.json` sidecar of a record file, or {} when there is none."""
    meta = metadata_path(path)
    if not meta.exists():
        return {}
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HealError(f"{meta}: corrupt metadata sidecar; delete it and re-run `heal prep`") from None


def require_columns(records: list[dict], columns: Iterable[str], path: str | Path, hint: str = "") -> None:
    """Raise a HealError naming the file and the missing columns (and the ones it has)."""
    if not records:
        raise HealError(f"{path}: no records; {hint or 'check the file'}")
    present = set(records[0])
    missing = [c for c in columns if c not in present]
    if missing:
        raise HealError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(sorted(present)) or 'none'})"
            + (f"; {hint}" if hint else "")
        )
