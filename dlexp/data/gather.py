"""Cutting a prepared table into per-split float32 arrays, scaled as they are cut.

Polars holds a table by column; a model wants rows. The table is turned row-major one
slice at a time (Polars' own transpose, `to_numpy`), each split's rows in that slice
are gathered, and each gathered block is scaled while it is still in cache. So every
value streams through memory once, and the only extra memory is one slice per core
(a row-major copy of the whole table, then a gather, then a scale: three passes and a
second table).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

SLICE_ROWS = 16384  # 16384 rows x 100 float32 inputs = 6 MiB: a slice and its blocks stay in cache


def gather_rows(table: pl.DataFrame, rows: dict[str, np.ndarray], shift_hi, shift_lo, size) -> dict[str, np.ndarray]:
    """{split: ((x[idx] - shift_hi) - shift_lo) / size} as float32 [len(idx), width], where
    x is `table` (float32 columns) row-major.

    The same float32 operations, in the same order, as Polars runs the expressions of
    `dlexp.data.prep._scaled` (which divides by a constant as a multiply by its float32
    reciprocal), so a resident split equals a streamed one bit for bit. An input prepared
    to the end has shift 0 and size 1 (exact no-ops).
    """
    hi, lo, sz = (np.asarray(a, np.float32) for a in (shift_hi, shift_lo, size))
    inv = np.float32(1) / sz
    out = {s: np.empty((len(idx), table.width), np.float32) for s, idx in rows.items()}
    if not all(increasing(idx) for idx in rows.values()):  # a row may come from any slice: one slice
        starts, step = [0], max(table.height, 1)
    else:
        starts, step = range(0, table.height, SLICE_ROWS), SLICE_ROWS

    def piece(r0: int) -> None:
        x = table.slice(r0, step).to_numpy(order="c")
        for split, idx in rows.items():
            a, b = np.searchsorted(idx, [r0, r0 + step]) if step != table.height else (0, len(idx))
            if a < b:
                o = out[split][a:b]
                np.take(x, idx[a:b] - r0, axis=0, out=o)
                o -= hi
                o -= lo
                o *= inv

    workers = min(len(os.sched_getaffinity(0)), len(starts))
    if workers <= 1:
        for r0 in starts:
            piece(r0)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(piece, starts))
    return out


def increasing(idx: np.ndarray) -> bool:
    """Row ids in strictly increasing order: each split's rows in a slice are then one run."""
    return len(idx) < 2 or bool(np.all(idx[1:] > idx[:-1]))
