"""Time series: sliding windows over a long, time-ordered table, split by time.

A long table holds one row per (id, time) with value columns. Each id's series is
cut in time into train / val / test periods (no shuffling across a cut), scaling is
fitted on the train period only, and windows of `lookback` steps predict the next
`horizon` values of the target. A window belongs to the split its targets fall in;
one whose targets straddle a cut is dropped, so no target is seen by two splits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from dlexp.data.dataset import SPLITS, Dataset
from dlexp.data.prep import safe_scale
from dlexp.data.sources import collect, scan
from dlexp.errors import DataError


@dataclass
class WindowPrep:
    """The fitted window transform: columns, train-period statistics, window shape."""

    features: list[str]
    target: str
    lookback: int
    horizon: int
    stride: int = 1
    id_column: str | None = None
    time_column: str | None = None
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # mean / std per column
    kind: str = "windows"

    def scaled(self, df: pl.DataFrame) -> pl.DataFrame:
        """The frame in time order per id, value columns standardized with the train stats."""
        cols = list(dict.fromkeys(self.features + [self.target]))
        order = [c for c in (self.id_column, self.time_column) if c]
        df = df.sort(order, maintain_order=True) if order else df
        exprs = [
            ((pl.col(c).cast(pl.Float64) - self.stats[c]["mean"]) / self.stats[c]["std"]).cast(pl.Float32) for c in cols
        ]
        keys = [pl.col(self.id_column)] if self.id_column else [pl.lit(0).alias("__id")]
        return df.select(keys + exprs)

    def transform(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(x [n, lookback, features], y [n] or [n, horizon]) of every window of `df`."""
        xs, ys = [], []
        for values, target in self._series(df):
            x, y, _ = window_arrays(values, target, self.lookback, self.horizon, self.stride)
            xs.append(x)
            ys.append(y)
        return self._stack(xs, ys)

    def _series(self, df: pl.DataFrame):
        frame = self.scaled(df)
        key = self.id_column or "__id"
        for _, part in frame.group_by(key, maintain_order=True):
            yield part.select(self.features).to_numpy(order="c"), part.get_column(self.target).to_numpy()

    def _stack(self, xs, ys):
        x = np.concatenate(xs) if xs else np.zeros((0, self.lookback, len(self.features)), np.float32)
        y = np.concatenate(ys) if ys else np.zeros((0, self.horizon), np.float32)
        return x.astype(np.float32), (y[:, 0] if self.horizon == 1 else y).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WindowPrep:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def window_arrays(values: np.ndarray, target: np.ndarray, lookback: int, horizon: int, stride: int):
    """Windows of one series: x[i] = values[t-lookback:t], y[i] = target[t:t+horizon]
    for t = lookback, lookback+stride, ...; also returns each window's first target time t."""
    n = len(target)
    starts = np.arange(lookback, n - horizon + 1, stride)
    if len(starts) == 0:
        return (np.zeros((0, lookback, values.shape[1]), np.float32), np.zeros((0, horizon), np.float32), starts)
    xv = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # [n-L+1, F, L]
    yv = np.lib.stride_tricks.sliding_window_view(target, horizon)  # [n-H+1, H]
    x = xv[starts - lookback].transpose(0, 2, 1)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(yv[starts], np.float32), starts


def time_cuts(n: int, val: float, test: float) -> tuple[int, int]:
    """Row positions where the val and the test periods of an n-step series begin."""
    for key, f in (("val_fraction", val), ("test_fraction", test)):
        if not 0.0 <= f < 1.0:
            raise DataError(f"dataset.{key}={f} must be in [0, 1)")
    if val + test >= 1.0:
        raise DataError(f"dataset.val_fraction + dataset.test_fraction = {val + test} leaves no train period")
    return int(round(n * (1 - val - test))), int(round(n * (1 - test)))


def timeseries(
    *,
    path: str,
    target: str,
    features: list[str] | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    lookback: int = 32,
    horizon: int = 1,
    stride: int = 1,
    format: str = "auto",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Dataset:
    """Forecasting windows from a long table: x [n, lookback, features], y the next `horizon`
    target values (regression, in the target's units after un-scaling).

    features: value columns fed to the model (default: every numeric column but the id and time).
    """
    for key, v, low in (("lookback", lookback, 1), ("horizon", horizon, 1), ("stride", stride, 1)):
        if int(v) < low:
            raise DataError(f"dataset.{key}={v} must be at least {low}")
    lf = scan(path, format)
    schema = lf.collect_schema()
    columns = list(schema.names())
    for key, c in (("target", target), ("id_column", id_column), ("time_column", time_column)):
        if c is not None and c not in schema:
            raise DataError(f"dataset.{key}={c!r} is not a column of {path}; columns: {', '.join(columns)}")
    keys = [c for c in (id_column, time_column) if c]
    if features is None:
        features = [c for c in columns if c not in keys and schema[c].is_numeric()]
    missing = [c for c in features if c not in schema]
    if missing:
        raise DataError(
            f"dataset.features names {', '.join(map(repr, missing))}, not columns of {path}; "
            f"columns: {', '.join(columns)}"
        )
    bad = [f"{c} ({schema[c]})" for c in list(features) + [target] if not schema[c].is_numeric()]
    if bad:
        raise DataError(f"time-series columns of {path} must be numeric: {', '.join(bad)}")
    cols = list(dict.fromkeys(keys + list(features) + [target]))
    df = collect(lf.select(cols), path)
    nulls = {c: n for c, n in df.null_count().row(0, named=True).items() if n}
    if nulls:
        raise DataError(f"time-series columns of {path} hold nulls: {nulls}; fill or drop them first")

    prep = WindowPrep(list(features), target, int(lookback), int(horizon), int(stride), id_column, time_column)
    # Fit the scaling on each id's train period only.
    order = [c for c in keys]
    df = df.sort(order, maintain_order=True) if order else df
    gid = pl.col(id_column) if id_column else pl.lit(0)
    pos = pl.int_range(pl.len()).over(gid) if id_column else pl.int_range(pl.len())
    length = pl.len().over(gid) if id_column else pl.len()
    train_end = (length.cast(pl.Float64) * (1 - val_fraction - test_fraction)).round().cast(pl.Int64)
    time_cuts(2, val_fraction, test_fraction)  # validates the fractions
    train_rows = df.filter(pos < train_end)
    value_cols = list(dict.fromkeys(list(features) + [target]))
    mean = train_rows.select(pl.col(value_cols).cast(pl.Float64).mean()).row(0)
    std = train_rows.select(pl.col(value_cols).cast(pl.Float64).std(ddof=0)).row(0)
    prep.stats = {c: {"mean": float(m or 0.0), "std": safe_scale(s)} for c, m, s in zip(value_cols, mean, std)}

    parts = {s: ([], []) for s in SPLITS}
    for sid, (values, tgt) in zip(_ids(df, id_column), prep._series(df)):
        n = len(tgt)
        if n < lookback + horizon:
            raise DataError(
                f"the series {sid} of {path} has {n} rows, fewer than dataset.lookback + dataset.horizon = "
                f"{lookback + horizon}; shorten the window or drop short series"
            )
        c1, c2 = time_cuts(n, val_fraction, test_fraction)
        x, y, t = window_arrays(values, tgt, lookback, horizon, stride)
        last = t + horizon - 1
        masks = {"train": last < c1, "val": (t >= c1) & (last < c2), "test": t >= c2}
        for s, m in masks.items():
            parts[s][0].append(x[m])
            parts[s][1].append(y[m])
    xs, ys = {}, {}
    for s, (xl, yl) in parts.items():
        xs[s], ys[s] = prep._stack(xl, yl)
        if len(xs[s]) == 0:
            raise DataError(
                f"the {s} split of {path} has no windows: each series' {s} period is shorter than "
                f"dataset.horizon={horizon} (or lookback={lookback} reaches past its start); "
                "use longer series, a larger fraction, or a shorter window"
            )
    info = prep.to_dict()
    info["source"] = {
        "path": str(path),
        "rows": df.height,
        "split": "time",
        "seed": seed,
        "fractions": {"val": val_fraction, "test": test_fraction},
        "sizes": {s: int(len(xs[s])) for s in SPLITS},
    }
    t = prep.stats[target]
    return Dataset(x=xs, y=ys, task="regression", target_scale=(t["mean"], t["std"]), prep=info)


def _ids(df: pl.DataFrame, id_column: str | None):
    if id_column is None:
        return ["(the whole table)"]
    return [f"{id_column}={v!r}" for v in df.get_column(id_column).unique(maintain_order=True).to_list()]
