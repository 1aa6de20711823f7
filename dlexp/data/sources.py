"""Reading tables lazily with Polars: one file, a glob, or a directory of shards."""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Iterator

import polars as pl

from dlexp.errors import DataError

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


def resolve_files(path: str, key: str = "dataset.path") -> list[str]:
    """Expands a file, glob or directory into a sorted list of files, or says why not."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if os.path.splitext(f)[1].lower() in FORMATS)
        if not files:
            raise DataError(f"{key}={path!r} is a directory with no data files ({', '.join(sorted(FORMATS))})")
        return files
    if any(c in path for c in "*?["):
        files = sorted(glob.glob(path))
        if not files:
            raise DataError(f"{key}={path!r}: the glob matches no file")
        return files
    if not os.path.exists(path):
        raise DataError(f"{key}={path!r}: no such file (cwd: {os.getcwd()})")
    return [path]


def detect_format(files: list[str], fmt: str, key: str = "dataset.format") -> str:
    if fmt != "auto":
        if fmt not in set(FORMATS.values()):
            raise DataError(f"{key}={fmt!r} is not a format; valid: auto, {', '.join(sorted(set(FORMATS.values())))}")
        return fmt
    ext = os.path.splitext(files[0])[1].lower()
    if ext not in FORMATS:
        raise DataError(
            f"cannot tell the format of {files[0]!r} from its extension; set {key} to one of "
            f"{', '.join(sorted(set(FORMATS.values())))}"
        )
    return FORMATS[ext]


INFER_ROWS = 10_000  # rows a CSV / NDJSON column's type is inferred from (Polars' default, 100, misses late text)
SNIFF_BYTES = 4096  # the start of a text file checked for binary content
NAMES = {"csv": "CSV", "ndjson": "NDJSON", "parquet": "Parquet", "ipc": "Arrow IPC"}
VALID = {  # what a file of each format must be, for the messages below
    "csv": "a CSV file: UTF-8 text, a header row, then a row of values per example",
    "ndjson": "an NDJSON file: UTF-8 text, one JSON object per line, a line per example",
    "parquet": "a complete Parquet file (it starts and ends with the bytes PAR1)",
    "ipc": "a complete Arrow IPC file (as Polars' write_ipc or Feather v2 writes it)",
}
# What Polars raises for a file it cannot parse. OSError only where a file is opened (a scan,
# a collect), not around a whole table's preparation, which also writes caches.
ROW_ERRORS = (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.SchemaError)
READ_ERRORS = (*ROW_ERRORS, OSError)


def scan(path: str, fmt: str = "auto") -> pl.LazyFrame:
    """A LazyFrame over every file behind `path`; an empty, binary (for text formats) or
    unreadable file is a DataError naming it, before anything else reads it."""
    files = resolve_files(path)
    fmt = detect_format(files, fmt)
    for f in files:
        check_file(f, fmt, sniff=f == files[0])  # text sniffed in the first file; the others if a read fails
    try:
        lf = scan_files(files, fmt)
        lf.collect_schema()  # reads the footer (Parquet, IPC) or infers the columns (CSV, NDJSON)
    except READ_ERRORS as e:
        raise unreadable(path, files, fmt, e) from None
    return lf


def scan_files(files: list[str], fmt: str) -> pl.LazyFrame:
    if fmt == "parquet":
        return pl.scan_parquet(files)
    if fmt == "csv":
        sep = "\t" if files[0].lower().endswith(".tsv") else ","
        return pl.scan_csv(files, separator=sep, infer_schema_length=INFER_ROWS)
    if fmt == "ipc":
        return pl.scan_ipc(files)
    return pl.scan_ndjson(files, infer_schema_length=INFER_ROWS)


def check_file(f: str, fmt: str, sniff: bool = True) -> None:
    """An empty file, or binary bytes where text is expected, named before Polars reads it."""
    if os.path.getsize(f) == 0:
        raise DataError(f"{f} is empty (0 bytes); expected {VALID[fmt]}")
    if sniff and fmt in ("csv", "ndjson"):
        with open(f, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        bad = _binary_at(head)
        if bad is not None:
            raise DataError(
                f"{f} is not {NAMES[fmt]} text: byte {bad} is binary (not UTF-8); expected {VALID[fmt]}. Save it "
                "as UTF-8, or, if it is Parquet or Arrow, give it that extension or set dataset.format"
            )


def _binary_at(head: bytes) -> int | None:
    """Offset of the first byte that UTF-8 text cannot hold (a NUL, an invalid sequence), else None."""
    if b"\0" in head:
        return head.index(b"\0")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3 or len(head) < SNIFF_BYTES:  # not a character cut at the sniff's end
            return e.start
    return None


def unreadable(path: str, files: list[str], fmt: str, e: Exception) -> DataError:
    """The DataError for a read that failed: names the file to blame (found by reading each
    alone) and says what that format must hold."""
    name, valid = NAMES.get(fmt, fmt), VALID.get(fmt, "a table in the format dataset.format names")
    if _no_rows(e):
        return DataError(f"{path} has no rows; expected {valid}")
    parsed = _parse_failure(str(e))
    if parsed:
        return DataError(f"{path}: {parsed}")
    culprit = _culprit(files, fmt) if len(files) > 1 else files[0]
    return DataError(
        f"cannot read {culprit} as {name} ({_first_line(e)}): it is damaged, truncated or another "
        f"format; expected {valid}. Write it again, or set dataset.format to its format"
    )


def _culprit(files: list[str], fmt: str) -> str:
    """The first of `files` that cannot be read alone (else all of them, as a glob)."""
    for f in files:
        try:
            check_file(f, fmt)
            scan_files([f], fmt).head(1).collect()
        except (DataError, *READ_ERRORS):
            return f
    return f"{files[0]} ... {files[-1]} ({len(files)} files)"


def _no_rows(e: Exception) -> bool:
    text = str(e)
    return isinstance(e, pl.exceptions.NoDataError) or "empty reader" in text or "could not infer data-type" in text


def _parse_failure(text: str) -> str | None:
    """Polars' "could not parse `x` as dtype `i64` at column 'a'" as a message about the data."""
    m = re.search(r"could not parse `(.*?)` as dtype `(.*?)` at column '(.*?)'", text)
    if not m:
        return None
    value, dtype, column = m.groups()
    return (
        f"column {column!r} holds {value!r} where the rows before it hold {dtype} values (a column's type "
        f"is read from its first {INFER_ROWS:,} rows); fix or drop the rows that differ"
    )


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def has_rows(lf: pl.LazyFrame) -> bool:
    """Whether the table has a row (a header-only CSV has none; reads one row, not the file)."""
    return lf.select(pl.first()).head(1).collect().height > 0


@contextlib.contextmanager
def reading(path: str, fmt: str = "auto", errors: tuple = ROW_ERRORS) -> Iterator[None]:
    """Maps a read failure that shows only once rows are read (a truncated NDJSON line, a
    damaged Parquet page, text past the rows a CSV column's type was read from) to a DataError
    naming the file. Polars' other errors (a missing column, a bad expression) pass: bugs."""
    try:
        yield
    except errors as e:
        files = resolve_files(path)
        try:
            fmt = detect_format(files, fmt)
        except DataError:  # an extension dataset.format overrode: name the format as given
            pass
        raise unreadable(path, files, fmt, e) from None


def collect(lf: pl.LazyFrame, path: str, fmt: str = "auto") -> pl.DataFrame:
    try:
        with reading(path, fmt, READ_ERRORS):
            return lf.collect()
    except pl.exceptions.ColumnNotFoundError as e:
        raise DataError(f"{path}: {e}") from None
