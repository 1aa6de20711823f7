"""Checks on the rows as read, before anything is fitted: null labels, nulls where the
rule is `error`, and inf values, each an error naming the columns. NaN is missing too,
so a float column holding NaN gets them as nulls.

One pass finds the common case: a float column whose sum is finite holds no NaN and
no inf, so only columns with a non-finite sum (or an overflowing one) are counted
exactly, and only columns that hold NaN are rewritten.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from dlexp.data import clean
from dlexp.errors import DataError


def check_values(frame, *, label: str, floats: list[str], rules: dict[str, Any], path: str):
    """`frame` (a DataFrame or a LazyFrame) with NaN made null, after checking its nulls and infs.

    floats: the float label and numeric feature columns (the ones NaN and inf can hold).
    """
    columns = frame.collect_schema().names()
    first = (
        frame.lazy()
        .select(
            [pl.col(c).null_count().alias(f"null:{c}") for c in columns]
            + [pl.col(c).sum().alias(f"sum:{c}") for c in floats]
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    nulls = {c: int(first[f"null:{c}"]) for c in columns}
    suspects = [c for c in floats if first[f"sum:{c}"] is not None and not math.isfinite(first[f"sum:{c}"])]
    nans, infs = _count_nan_inf(frame, suspects)
    clean.check_nulls({c: n + nans.get(c, 0) for c, n in nulls.items()}, rules, label, path)
    bad = {c: n for c, n in infs.items() if n}
    if bad:
        listed = ", ".join(f"{c} ({n})" for c, n in bad.items())
        raise DataError(f"columns of {path} hold inf values: {listed}; replace or drop those rows first")
    with_nan = [c for c, n in nans.items() if n]
    return frame.with_columns([pl.col(c).fill_nan(None) for c in with_nan]) if with_nan else frame


def _count_nan_inf(frame, columns: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    if not columns:
        return {}, {}
    row = (
        frame.lazy()
        .select(
            [pl.col(c).is_nan().sum().alias(f"nan:{c}") for c in columns]
            + [pl.col(c).is_infinite().sum().alias(f"inf:{c}") for c in columns]
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    return {c: int(row[f"nan:{c}"]) for c in columns}, {c: int(row[f"inf:{c}"]) for c in columns}
