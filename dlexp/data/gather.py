"""Cutting a prepared table into per-split float32 arrays, scaled as they are cut.

Polars holds a table by column; a model wants rows. One slice of the table at a time,
each split's rows are gathered column by column (a column of the slice is contiguous,
and so are the block's column sums), the block is scaled while it is still in cache,
and it is written transposed, row-major, into the split's array. So every value
streams through memory once, and the only extra memory is two slices per core, the
ones in flight (instead of a row-major copy of the whole table, then a gather, then a
scale: three passes and a second table). Transposing each slice first with Polars
(`to_numpy(order="c")`) and gathering rows cost a 1M x 100 load 0.96 s against 0.78 s
(medians of 8, in turns in one process).

When the scaling is still to be fitted (standardizing float32 inputs), the cut sums the
train rows' moments instead while each block is in cache (`gather_moments`), and the
arrays are scaled in place afterwards (`scale_rows`): one pass less over the train rows
than a separate fit.

A lazy table (a Parquet scan) is cut from the batches Polars yields as it reads, so the
read and the cut share the cores and the table is never whole in memory: one table of
memory less, and memory that is reused instead of touched for the first time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

SLICE_ROWS = 8192  # 8192 rows x 100 float32 inputs = 3 MiB: a slice and its blocks stay in cache
# Rows per batch a Parquet scan is read in (here, then sliced; `loader.read_rows`):
# Polars reads 8192-row batches ~30% slower than 65536-row ones (0.215 s against 0.168 s
# for 1M x 100, as fast as one read_parquet), and a 1M x 100 load takes 0.38 s against
# 0.43 s (fastest of 12, in turns).
READ_ROWS = 65536


Table = pl.DataFrame | pl.LazyFrame


class NotFinite(Exception):
    """A lazy table, cut without checks, held a value that is not finite (a null, NaN or
    inf) or too large for float32 sums: its reader checks and cleans it whole instead."""


def gather_rows(table: Table, rows: dict[str, np.ndarray], shift_hi, shift_lo, size) -> dict[str, np.ndarray]:
    """{split: ((x[idx] - shift_hi) - shift_lo) / size} as float32 [len(idx), width], where
    x is `table` (float32 columns) row-major.

    The same float32 operations, in the same order, as Polars runs the expressions of
    `dlexp.data.prep._scaled` (which divides by a constant as a multiply by its float32
    reciprocal), so a resident split equals a streamed one bit for bit. An input prepared
    to the end has shift 0 and size 1 (exact no-ops). A lazy `table` is read batch by
    batch as it is cut.
    """
    scale = _scaler(shift_hi, shift_lo, size)
    out, _ = _cut(table, rows, lambda split, block: scale(block.T))
    return out


@dataclass(frozen=True)
class Moments:
    """Per column float64 sums of d = x - shift and d * d (d and d * d in float32), over
    `count` rows; `shift` is the first of those rows (see `dlexp.data.prep.standard_stats`).
    all_finite: every value cut, of every split, was finite (no null, NaN or inf)."""

    count: int
    shift: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    all_finite: bool = True


def gather_moments(table: Table, rows: dict[str, np.ndarray], split: str) -> tuple[dict[str, np.ndarray], Moments]:
    """The unscaled cut of `gather_rows`, plus the `Moments` of the rows of `split`,
    summed block by block while each block is in cache (partial sums added in slice order,
    so the result does not depend on the threads)."""
    idx = rows[split]
    first = int(idx.min()) if len(idx) else -1
    shift = [np.zeros(_width(table), np.float32)] if first < 0 else []

    def look(r0: int, piece: pl.DataFrame) -> None:  # in order, before any block of `split` is visited
        if not shift and r0 <= first < r0 + piece.height:
            shift.append(piece.slice(first - r0, 1).to_numpy().astype(np.float32).reshape(-1))

    def visit(name: str, block: np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):  # not finite: prep falls back to float64 moments
            if name != split:
                return bool(np.isfinite(np.add.reduce(block, axis=1)).all())
            d = block - shift[0][:, None]
            return np.add.reduce(d, axis=1, dtype=np.float64), np.add.reduce(d * d, axis=1, dtype=np.float64)

    out, parts = _cut(table, rows, visit, look)
    zero = np.zeros(len(shift[0]))
    sums = [p for p in parts if isinstance(p, tuple)]
    total = sum((p[0] for p in sums), zero), sum((p[1] for p in sums), zero)
    finite = all(p for p in parts if not isinstance(p, tuple)) and all(np.isfinite(t).all() for t in total)
    return out, Moments(len(idx), shift[0], *total, all_finite=finite)


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


def _cut(table: Table, rows: dict[str, np.ndarray], visit: Callable, look: Callable = lambda r0, piece: None):
    """({split: table row-major at idx}, what the visits returned), cut piece by piece:
    `look(r0, piece)` sees each piece in order before it is cut, `visit(split, block)` each
    gathered block while it is in cache, as [width, rows] (a column per row of the block:
    the sums of a column are then contiguous)."""
    out = {s: np.empty((len(idx), _width(table)), np.float32) for s, idx in rows.items()}
    whole = not all(increasing(idx) for idx in rows.values())  # a row may come from anywhere: one piece

    def cut(item: tuple[int, pl.DataFrame]) -> list:
        r0, piece = item
        seen = []
        if whole:
            x = piece.to_numpy(order="c")
            for split, idx in rows.items():
                np.take(x, idx, axis=0, out=out[split])
                seen.append(visit(split, out[split].T))
            return seen
        columns = piece.to_numpy(order="fortran").T  # [width, rows]: one copy of each column, no transpose
        for split, idx in rows.items():
            a, b = np.searchsorted(idx, [r0, r0 + piece.height])
            if a < b:
                block = np.take(columns, idx[a:b] - r0, axis=1)
                seen.append(visit(split, block))
                out[split][a:b] = block.T
        return seen

    def looked():
        for r0, piece in _pieces(table, whole):
            look(r0, piece)
            yield r0, piece

    return out, [p for seen in _each(cut, looked()) for p in seen]


def _pieces(table: Table, whole: bool) -> Iterator[tuple[int, pl.DataFrame]]:
    """(first row, rows) of `table`, SLICE_ROWS at a time: slices of a DataFrame, or of the
    batches of a lazy query as Polars reads them, so the table is never whole in memory."""
    if whole:
        yield 0, table.collect() if isinstance(table, pl.LazyFrame) else table
    elif isinstance(table, pl.LazyFrame):
        r0 = 0
        for batch in table.collect_batches(chunk_size=READ_ROWS):
            yield from _slices(batch, r0)
            r0 += batch.height
    else:
        yield from _slices(table, 0)


def _slices(frame: pl.DataFrame, r0: int) -> Iterator[tuple[int, pl.DataFrame]]:
    for a in range(0, frame.height, SLICE_ROWS):
        yield r0 + a, frame.slice(a, SLICE_ROWS)


def _width(table: Table) -> int:
    return len(table.collect_schema())


def _each(fn: Callable, items: Iterable) -> list:
    """fn over items, one thread per core (numpy and Polars release the GIL), results in
    order. Two items per thread at most are taken ahead, so items that a reader yields
    (`_pieces` of a lazy table) are read while the ones before are worked on."""
    workers = len(os.sched_getaffinity(0))
    if workers <= 1:
        return [fn(i) for i in items]
    done, ahead = [], deque()
    with ThreadPoolExecutor(workers) as pool:
        for item in items:
            ahead.append(pool.submit(fn, item))
            if len(ahead) >= 2 * workers:
                done.append(ahead.popleft().result())
        done.extend(f.result() for f in ahead)
    return done


def take_frame(frame, idx: np.ndarray, streaming: bool, n: int):
    """The rows `idx` (of `n`) of `frame`, in that order. Rows in increasing order are a
    lazy filter by a row mask (one byte a row; a hash set of the ids would be ~30), so a
    fit aggregates them chunk by chunk without copying the split."""
    if streaming or increasing(idx):
        mask = np.zeros(n, bool)
        mask[idx] = True
        if streaming:  # the streamed frame's rows are named by `__row`
            return frame.filter(pl.lit(pl.Series("__take", mask)).gather(pl.col("__row"))).drop("__row")
        return frame.lazy().filter(pl.lit(pl.Series("__take", mask)))
    return frame[idx].lazy()
