"""Reading tables lazily with Polars: one file, a glob, or a directory of shards."""

from __future__ import annotations

import glob
import os

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
        files = sorted(
            os.path.join(path, f) for f in os.listdir(path) if os.path.splitext(f)[1].lower() in FORMATS
        )
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


def scan(path: str, fmt: str = "auto") -> pl.LazyFrame:
    """A LazyFrame over every file behind `path` (nothing is read yet)."""
    files = resolve_files(path)
    fmt = detect_format(files, fmt)
    try:
        if fmt == "parquet":
            return pl.scan_parquet(files)
        if fmt == "csv":
            sep = "\t" if files[0].lower().endswith(".tsv") else ","
            return pl.scan_csv(files, separator=sep)
        if fmt == "ipc":
            return pl.scan_ipc(files)
        return pl.scan_ndjson(files)
    except Exception as e:  # polars raises its own errors for unreadable files
        raise DataError(f"cannot read {path!r} as {fmt}: {e}") from None


def collect(lf: pl.LazyFrame, path: str) -> pl.DataFrame:
    try:
        return lf.collect()
    except pl.exceptions.ColumnNotFoundError as e:
        raise DataError(f"{path}: {e}") from None
    except (pl.exceptions.ComputeError, OSError) as e:
        raise DataError(f"cannot read {path!r}: {e}") from None
