"""Cutting a prepared table into per-split float32 arrays, scaled as they are cut.

Polars holds a table by column; a model wants rows. The table is turned row-major one
slice at a time (Polars' own transpose, `to_numpy`), each split's rows in that slice
are gathered, and each gathered block is scaled while it is still in cache. So every
value streams through memory once, and the only extra memory is one slice per core
(a row-major copy of the whole table, then a gather, then a scale: three passes and a
second table).

When the scaling is still to be fitted (standardizing float32 inputs), the cut sums the
train rows' moments instead while each block is in cache (`gather_moments`), and the
arrays are scaled in place afterwards (`scale_rows`): one pass less over the train rows
than a separate fit.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

SLICE_ROWS = 8192  # 8192 rows x 100 float32 inputs = 3 MiB: a slice and its blocks stay in cache


def gather_rows(table: pl.DataFrame, rows: dict[str, np.ndarray], shift_hi, shift_lo, size) -> dict[str, np.ndarray]:
    """{split: ((x[idx] - shift_hi) - shift_lo) / size} as float32 [len(idx), width], where
    x is `table` (float32 columns) row-major.

    The same float32 operations, in the same order, as Polars runs the expressions of
    `dlexp.data.prep._scaled` (which divides by a constant as a multiply by its float32
    reciprocal), so a resident split equals a streamed one bit for bit. An input prepared
    to the end has shift 0 and size 1 (exact no-ops).
    """
    scale = _scaler(shift_hi, shift_lo, size)
    out, _ = _cut(table, rows, lambda split, block: scale(block))
    return out


@dataclass(frozen=True)
class Moments:
    """Per column float64 sums of d = x - shift and d * d (d and d * d in float32), over
    `count` rows; `shift` is the first of those rows (see `dlexp.data.prep.standard_stats`)."""

    count: int
    shift: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray


def gather_moments(table: pl.DataFrame, rows: dict[str, np.ndarray], split: str) -> tuple[dict[str, np.ndarray], Moments]:
    """The unscaled cut of `gather_rows`, plus the `Moments` of the rows of `split`,
    summed block by block while each block is in cache (partial sums added in slice order,
    so the result does not depend on the threads)."""
    idx = rows[split]
    first = int(idx.min()) if len(idx) else 0
    shift = table.slice(first, 1).to_numpy().astype(np.float32).reshape(-1)

    def visit(name: str, block: np.ndarray):
        if name != split:
            return None
        with np.errstate(over="ignore", invalid="ignore"):  # not finite: prep falls back to float64 moments
            d = block - shift
            return np.add.reduce(d, axis=0, dtype=np.float64), np.add.reduce(d * d, axis=0, dtype=np.float64)

    out, parts = _cut(table, rows, visit)
    zero = np.zeros(table.width)
    sums = [p for p in parts if p is not None]
    total = sum((p[0] for p in sums), zero), sum((p[1] for p in sums), zero)
    return out, Moments(len(idx), shift, *total)


def scale_rows(arrays: dict[str, np.ndarray], shift_hi, shift_lo, size) -> None:
    """`gather_rows`' scaling, in place, on arrays already cut (block by block, one per core)."""
    scale = _scaler(shift_hi, shift_lo, size)
    blocks = [a[r0 : r0 + SLICE_ROWS] for a in arrays.values() for r0 in range(0, len(a), SLICE_ROWS)]
    _each(scale, blocks)


def increasing(idx: np.ndarray) -> bool:
    """Row ids in strictly increasing order: each split's rows in a slice are then one run."""
    return len(idx) < 2 or bool(np.all(idx[1:] > idx[:-1]))


def _scaler(shift_hi, shift_lo, size) -> Callable[[np.ndarray], None]:
    hi, lo, sz = (np.asarray(a, np.float32) for a in (shift_hi, shift_lo, size))
    inv = np.float32(1) / sz

    def scale(block: np.ndarray) -> None:
        block -= hi
        block -= lo
        block *= inv

    return scale


def _cut(table: pl.DataFrame, rows: dict[str, np.ndarray], visit: Callable) -> tuple[dict[str, np.ndarray], list]:
    """{split: table row-major at idx}, cut slice by slice; `visit(split, block)` sees each
    gathered block while it is in cache. Returns the arrays and what the visits returned."""
    out = {s: np.empty((len(idx), table.width), np.float32) for s, idx in rows.items()}
    if not all(increasing(idx) for idx in rows.values()):  # a row may come from any slice: one slice
        starts, step = [0], max(table.height, 1)
    else:
        starts, step = range(0, table.height, SLICE_ROWS), SLICE_ROWS

    def piece(r0: int) -> list:
        x = table.slice(r0, step).to_numpy(order="c")
        seen = []
        for split, idx in rows.items():
            a, b = np.searchsorted(idx, [r0, r0 + step]) if step != table.height else (0, len(idx))
            if a < b:
                o = out[split][a:b]
                np.take(x, idx[a:b] - r0, axis=0, out=o)
                seen.append(visit(split, o))
        return seen

    parts = [p for seen in _each(piece, starts) for p in seen]
    return out, parts


def _each(fn: Callable, items) -> list:
    """fn over items, one thread per core (numpy and Polars release the GIL), results in order."""
    items = list(items)
    workers = min(len(os.sched_getaffinity(0)), len(items))
    if workers <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))
