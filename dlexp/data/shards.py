"""Data shards: each process reads and prepares only its own part of the rows.

With S shards (`trainer.data_shards`) the table's rows are cut into S contiguous ranges:
at file boundaries where there are at least S files (a shard reads whole files), else even
row ranges. Shards are dealt to the processes in order, S / P each. The split stays global:
every process reads the key columns (label, weight, split and time columns: a few bytes a
row) and draws the same split, so shard p's train / val / test rows are the split's rows
that fall in its range, and every process knows every shard's sizes without asking.

The preparation is fitted per shard and combined in shard order (`combine_stats`). Every
process gets all shards' partial statistics (`exchange`: an all-gather across processes)
and computes the same result; one process holding every shard computes it the same way,
which is what makes one process with `data_shards=2` train exactly like two processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from dlexp.errors import ConfigError, DataError

# Scalings whose statistics combine exactly from per-shard parts (moments; min and max).
SHARDABLE_SCALES = ("standard", "minmax", "unit", "none")


@dataclass(frozen=True)
class ShardSpec:
    """How many shards there are and which of them this process reads."""

    count: int
    owned: tuple[int, ...]
    # set by the user (trainer.data_shards): data that cannot be sharded is an error; chosen
    # by default: such data is read whole by every process instead
    explicit: bool = True

    @classmethod
    def for_process(cls, count: int, process: int, processes: int, explicit: bool = True) -> ShardSpec:
        if count < 1:
            raise ConfigError(f"trainer.data_shards={count} must be at least 1")
        if count == 1:  # one shard: the whole table, read by every process
            return cls(1, (0,), explicit)
        if count % processes:
            raise ConfigError(
                f"trainer.data_shards={count} does not split over {processes} processes; use a multiple of {processes}"
            )
        per = count // processes
        return cls(count, tuple(range(process * per, (process + 1) * per)), explicit)

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def all_local(self) -> bool:
        """Whether this process holds every shard (one process: the whole data set)."""
        return len(self.owned) == self.count


def shard_bounds(file_rows: list[int], count: int) -> list[tuple[int, int]]:
    """[lo, hi) row range of each shard: whole files when there are at least `count` of them
    (each shard's cut at the file boundary nearest an even share), else even row ranges."""
    total = sum(file_rows)
    if len(file_rows) >= count:
        ends = np.cumsum(file_rows)
        cuts, last = [0], 0
        for k in range(1, count):
            # the nearest file end to k/count of the rows, leaving a file for each later shard
            lo, hi = last + 1, len(file_rows) - (count - k)
            i = min(range(lo, hi + 1), key=lambda j: abs(int(ends[j - 1]) - total * k / count))
            cuts.append(int(ends[i - 1]))
            last = i
        cuts.append(total)
    else:
        cuts = [total * k // count for k in range(count + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def read_range(files: list[str], file_rows: list[int], scan_files, lo: int, hi: int) -> pl.LazyFrame:
    """Rows [lo, hi) of the files read in order: only the files that hold them are scanned."""
    start, picked, first = 0, [], None
    for f, n in zip(files, file_rows):
        if start < hi and start + n > lo:
            picked.append(f)
            first = start if first is None else first
        start += n
    if not picked or first is None:
        raise DataError(f"rows {lo}..{hi} are in none of {len(files)} files")
    return scan_files(picked).slice(lo - first, hi - lo)


def local_rows(idx: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The split's rows (global ids, increasing) that fall in [lo, hi), as ids within the shard."""
    a, b = np.searchsorted(idx, [lo, hi])
    return (idx[a:b] - lo).astype(np.int64)


# ---------------------------------------------------------------------- statistics


def partial_stats(train: pl.LazyFrame, cols: list[str], scale: str) -> np.ndarray:
    """float64 [3, len(cols)] of one shard's train rows: (count, mean, sum of squared
    deviations) for standard scaling, (count, min, max) otherwise. One streaming pass: the
    moments are summed around the shard's first train row, as `prep.standard_stats` does,
    so no column is held whole."""
    if not cols or scale == "none":
        return np.zeros((3, len(cols)))
    x = [pl.col(c).cast(pl.Float64) for c in cols]
    if scale == "standard":
        first = train.select(x).head(1).collect()
        shift = [v or 0.0 for v in first.row(0)] if first.height else [0.0] * len(cols)
        d = [(e - s).alias(c) for e, s, c in zip(x, shift, cols)]
        aggs = [pl.len().alias("n")] + [e.sum().alias(f"a{i}") for i, e in enumerate(d)]
        aggs += [(e * e).sum().alias(f"b{i}") for i, e in enumerate(d)]
    else:
        aggs = [pl.len().alias("n")] + [e.min().alias(f"a{i}") for i, e in enumerate(x)]
        aggs += [e.max().alias(f"b{i}") for i, e in enumerate(x)]
    row = train.select(aggs).collect(engine="streaming").row(0, named=True)
    out = np.full((3, len(cols)), np.nan)
    out[0] = n = row["n"]
    for i in range(len(cols)):
        a, b = row[f"a{i}"], row[f"b{i}"]
        if scale == "standard" and n:  # (sum, sum of squares) around the shift -> (mean, M2)
            out[1, i], out[2, i] = shift[i] + a / n, max(b - a * a / n, 0.0)
        elif a is not None:
            out[1, i], out[2, i] = a, b
    return out


def combine_stats(parts: np.ndarray, cols: list[str], scale: str) -> dict[str, dict]:
    """Prep.stats from every shard's `partial_stats` [S, 3, C], combined in shard order
    (Chan's parallel update for the moments), so every process gets the same floats."""
    from dlexp.data.prep import safe_scale

    if scale == "none" or not cols:
        return {}
    present = [p for p in parts if p[0, 0] > 0]  # a shard without train rows adds nothing
    if scale == "standard":
        n, mean, m2 = 0.0, np.zeros(len(cols)), np.zeros(len(cols))
        for p in present:
            nb, mb, m2b = p[0, 0], p[1], p[2]
            delta = mb - mean
            total = n + nb
            mean = mean + delta * (nb / total)
            m2 = m2 + m2b + delta * delta * (n * nb / total)
            n = total
        return {c: {"mean": float(m), "std": safe_scale(math.sqrt(max(v / n, 0.0)))} for c, m, v in zip(cols, mean, m2)}
    lo = np.min([p[1] for p in present], axis=0)
    hi = np.max([p[2] for p in present], axis=0)
    if scale == "unit":  # one min and range for every pixel
        lo, hi = np.full(len(cols), lo.min()), np.full(len(cols), hi.max())
    return {c: {"min": float(a), "range": safe_scale(float(b - a))} for c, a, b in zip(cols, lo, hi)}


def exchange(local: np.ndarray, spec: ShardSpec) -> np.ndarray:
    """[count, ...]: every shard's `local` part, in shard order. One process holding every
    shard has them already; several gather them from each other."""
    if spec.all_local:
        return local
    return allgather_f64(local).reshape(spec.count, *local.shape[1:])


def union_categories(local: list[dict[str, list]], spec: ShardSpec) -> dict[str, list]:
    """Each categorical column's train values over every shard (`local`: one {column:
    values} per owned shard), in `Prep.fit`'s order: one process's encoding."""
    from dlexp.data.prep import ordered_categories

    parts = local if spec.all_local else [p for gathered in allgather_json(local) for p in gathered]
    cols = parts[0].keys() if parts else []
    return {c: ordered_categories({v for p in parts for v in p[c]}) for c in cols}


def allgather_json(local) -> list:
    """Every process's JSON-able `local`, in process order (a collective)."""
    import json

    raw = np.frombuffer(json.dumps(local).encode(), np.uint8)
    longest = int(allgather_f64(np.array([raw.size])).max())
    padded = np.zeros(longest, np.uint8)
    padded[: raw.size] = raw
    from jax.experimental import multihost_utils

    gathered = np.asarray(multihost_utils.process_allgather(padded.astype(np.int32)))
    return [json.loads(bytes(row.astype(np.uint8)).rstrip(b"\0")) for row in gathered]


def allgather_f64(local: np.ndarray) -> np.ndarray:
    """[processes, ...]: every process's float64 `local`, exactly (a collective: every
    process calls it)."""
    from jax.experimental import multihost_utils

    # float64 travels as its bytes (uint32 pairs): JAX would round it to float32
    bits = np.ascontiguousarray(local, np.float64).view(np.uint32)
    return np.asarray(multihost_utils.process_allgather(bits)).view(np.float64)


@dataclass
class LocalShards:
    """This process's shards, prepared, and every shard's split sizes.

    x / y / w: {split: one array per owned shard} (x["train"]: None per shard when streamed;
    w: None without a weight column). sizes: {split: rows in every shard, in shard order}.
    streams: each owned shard's prepared train file when the train split is streamed.
    """

    spec: ShardSpec
    bounds: list[tuple[int, int]]
    sizes: dict[str, list[int]]
    x: dict[str, list]
    y: dict[str, list[np.ndarray]]
    w: dict[str, list[np.ndarray]] | None = None
    streams: list | None = None

    def weights(self, split: str) -> list[np.ndarray] | None:
        return None if self.w is None else self.w[split]

    def rows_read(self) -> int:
        """Rows of features this process read: its shards' ranges."""
        return sum(self.bounds[p][1] - self.bounds[p][0] for p in self.spec.owned)
