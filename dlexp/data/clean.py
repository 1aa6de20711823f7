"""Cleaning rules: missing values and outliers, fitted on the train split only.

`missing` is one rule for every column or a mapping per column:
  error (default: say which columns hold nulls), drop (drop those rows),
  mean, median, mode (fill with the train split's value), or a number / string (fill
  with that constant); given for all columns, mean / median fill the categorical
  ones with their mode. `outliers` is `zscore` (|x - mean| > t * std) or `iqr`
  (outside [q1 - t * iqr, q3 + t * iqr]) on numeric features, fitted on train and
  applied as `clip` (every split) or `drop` (train rows only; val / test are clipped,
  so evaluation still covers every row).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dlexp.errors import DataError

FILL_RULES = ("mean", "median", "mode")
MISSING_RULES = ("error", "drop") + FILL_RULES
OUTLIER_RULES = ("zscore", "iqr")
OUTLIER_ACTIONS = ("clip", "drop")
DEFAULT_THRESHOLD = {"zscore": 3.0, "iqr": 1.5}


def missing_rules(missing: Any, columns: list[str], numeric: list[str]) -> dict[str, Any]:
    """One rule per column from `dataset.missing` (a rule, or {column: rule})."""
    if isinstance(missing, dict):
        unknown = [c for c in missing if c not in columns]
        if unknown:
            raise DataError(f"dataset.missing names {unknown}, not feature columns; features: {', '.join(columns)}")
        rules = {c: missing.get(c, "error") for c in columns}
    else:  # one rule for all: mean / median fill the numeric columns, mode the others
        rules = {c: ("mode" if missing in ("mean", "median") and c not in numeric else missing) for c in columns}
    for c, r in rules.items():
        if isinstance(r, str) and r not in MISSING_RULES and c in numeric:
            raise DataError(
                f"dataset.missing={r!r} for column {c!r} is not valid; choose one of {', '.join(MISSING_RULES)} "
                "or a constant number"
            )
        if r in ("mean", "median") and c not in numeric:
            raise DataError(f"dataset.missing={r!r} cannot fill the non-numeric column {c!r}; use mode or a constant")
    return rules


def check_nulls(counts: dict[str, int], rules: dict[str, Any], label: str, path: str) -> None:
    """Null labels, and nulls in columns whose rule is `error`, are errors naming the columns."""
    if counts.get(label):
        raise DataError(f"label column {label!r} of {path} has {counts[label]} null values; drop those rows first")
    bad = {c: n for c, n in counts.items() if n and rules.get(c) == "error"}
    if bad:
        listed = ", ".join(f"{c} ({n})" for c, n in bad.items())
        raise DataError(
            f"feature columns of {path} hold nulls: {listed}; set dataset.missing to drop, mean, median, mode "
            "or a constant (for all columns, or per column: {col: median})"
        )


def fit_fills(train: pl.LazyFrame, rules: dict[str, Any]) -> dict[str, Any]:
    """The value each filled column gets, from the train split."""
    exprs = []
    for c, r in rules.items():
        if r == "mean":
            exprs.append(pl.col(c).cast(pl.Float64).mean().alias(c))
        elif r == "median":
            exprs.append(pl.col(c).cast(pl.Float64).median().alias(c))
        elif r == "mode":  # the most frequent value; ties go to the smallest, so it is deterministic
            exprs.append(pl.col(c).drop_nulls().mode().sort().first().alias(c))
    fills = train.select(exprs).collect().row(0, named=True) if exprs else {}
    for c, r in rules.items():
        if r not in MISSING_RULES:
            fills[c] = r  # a constant
    return {c: (v if v is not None else 0) for c, v in fills.items()}


def fill_expr(c: str, fills: dict[str, Any]) -> pl.Expr:
    return pl.col(c).fill_null(fills[c]) if c in fills else pl.col(c)


def fit_bounds(train: pl.LazyFrame, columns: list[str], rule: str, threshold: float | None) -> dict[str, list[float]]:
    """[low, high] per numeric column beyond which a value is an outlier (train statistics)."""
    if rule not in OUTLIER_RULES:
        raise DataError(f"dataset.outliers={rule!r} is not valid; choose one of {', '.join(OUTLIER_RULES)} or null")
    t = float(DEFAULT_THRESHOLD[rule] if threshold is None else threshold)
    if t <= 0:
        raise DataError(f"dataset.outlier_threshold={threshold} must be positive")
    if not columns:
        return {}
    x = [pl.col(c).cast(pl.Float64) for c in columns]
    if rule == "zscore":
        row = (
            train.select(
                [e.mean().alias(f"a{i}") for i, e in enumerate(x)]
                + [e.std(ddof=0).alias(f"b{i}") for i, e in enumerate(x)]
            )
            .collect()
            .row(0)
        )
        n = len(columns)
        return {c: [row[i] - t * row[n + i], row[i] + t * row[n + i]] for i, c in enumerate(columns)}
    row = (
        train.select(
            [e.quantile(0.25, "linear").alias(f"a{i}") for i, e in enumerate(x)]
            + [e.quantile(0.75, "linear").alias(f"b{i}") for i, e in enumerate(x)]
        )
        .collect()
        .row(0)
    )
    n = len(columns)
    return {
        c: [row[i] - t * (row[n + i] - row[i]), row[n + i] + t * (row[n + i] - row[i])] for i, c in enumerate(columns)
    }


def outlier_mask(bounds: dict[str, list[float]]) -> pl.Expr:
    """True for rows with any value outside its bounds."""
    tests = [(pl.col(c) < lo) | (pl.col(c) > hi) for c, (lo, hi) in bounds.items()]
    return pl.any_horizontal(tests) if tests else pl.lit(False)


def check_action(action: str) -> None:
    if action not in OUTLIER_ACTIONS:
        raise DataError(f"dataset.outlier_action={action!r} is not valid; choose one of {', '.join(OUTLIER_ACTIONS)}")
