"""Streaming: the prepared train split on disk as Parquet, read back in bounded windows.

`write_train_stream` sinks the prepared train rows (Polars' streaming engine: the
table is never whole in memory) to one float32 Parquet file. `StreamingLoader` (in
loader.py) reads it back with `collect_batches`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

import polars as pl

FORMAT = 3  # part of the cache key: bump when the prepared file changes (2: float32 scaling; 3: row groups)


@dataclass(frozen=True)
class TrainStream:
    path: str  # prepared float32 feature columns, one row per train row, in train order
    rows: int
    x_shape: tuple[int, ...]  # one example's shape (the file holds it flat)
    columns: tuple[str, ...]


def write_train_stream(train: pl.LazyFrame, prep, cache_dir: str | None, tag: str) -> TrainStream:
    """Writes the prepared train split once per (source, preparation); later runs reuse it."""
    names = prep.input_names()
    flat = [f"x{i}" for i in range(len(names))]
    plan = train.select(prep.features_expr(train.collect_schema())).rename(dict(zip(names, flat)))
    key = json.dumps([prep.to_dict(), tag, FORMAT], sort_keys=True, default=str)  # tag: the source and its train rows
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    folder = os.path.join(os.path.expanduser(cache_dir or tempfile.gettempdir()), "stream")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"train_{digest}.parquet")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        plan.sink_parquet(tmp)  # Polars' default row groups: small ones make it buffer far more (docs/performance.md)
        os.replace(tmp, path)
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    shape = tuple(prep.image_shape) if prep.image_shape else (len(names),)
    return TrainStream(path, int(rows), shape, tuple(flat))
