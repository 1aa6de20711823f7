"""The generic data set: any table Polars can scan, a label column, feature columns.

Every source ends here, built-in data sets included (they are written to Parquet
once and read back through this path), so a user's file gets the same checks,
splits and preparation as the examples.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import polars as pl

from dlexp.data.dataset import Dataset
from dlexp.data.prep import Prep
from dlexp.data.sources import collect, scan
from dlexp.data.splits import split_indices
from dlexp.errors import DataError

TASKS = ("auto", "classification", "regression")


def table(
    *,
    path: str,
    label: str,
    features: Optional[list[str]] = None,
    drop: Optional[list[str]] = None,
    format: str = "auto",
    image_shape: Optional[list[int]] = None,
    task: str = "auto",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split: str = "stratified",
    scale: str = "standard",
    seed: int = 0,
) -> Dataset:
    """Reads `path`, splits it by fractions with `seed`, and prepares it (fitted on train).

    features: the feature columns; None means every column but the label and `drop`.
    image_shape: reshape the features to this [H, W, C] (e.g. 64 pixel columns -> [8, 8, 1]).
    """
    lf = scan(path, format)
    schema = lf.collect_schema()
    columns = list(schema.names())
    if label not in schema:
        raise DataError(f"dataset.label={label!r} is not a column of {path}; columns: {', '.join(columns)}")
    drop = list(drop or [])
    for c in drop:
        if c not in schema:
            raise DataError(f"dataset.drop names {c!r}, not a column of {path}; columns: {', '.join(columns)}")
    if features is None:
        features = [c for c in columns if c != label and c not in drop]
    else:
        features = list(features)
        missing = [c for c in features if c not in schema]
        if missing:
            raise DataError(
                f"dataset.features names {', '.join(map(repr, missing))}, not columns of {path}; "
                f"columns: {', '.join(columns)}"
            )
    if not features:
        raise DataError(f"dataset.features: no feature columns left in {path} (columns: {', '.join(columns)})")
    bad = [f"{c} ({schema[c]})" for c in features if not (schema[c].is_numeric() or schema[c] == pl.Boolean)]
    if bad:
        raise DataError(
            f"non-numeric feature columns in {path}: {', '.join(bad)}; "
            "list only numeric columns in dataset.features, or drop these with dataset.drop"
        )
    if image_shape is not None and int(np.prod(image_shape)) != len(features):
        raise DataError(
            f"dataset.image_shape={list(image_shape)} holds {int(np.prod(image_shape))} values "
            f"but there are {len(features)} feature columns"
        )

    df = collect(lf.select(features + [label]), path)
    if df.height == 0:
        raise DataError(f"{path} has no rows")
    _check_nulls(df, label, features, path)
    task = _infer_task(task, df.get_column(label))

    labels = df.get_column(label).to_numpy() if task == "classification" else None
    idx = split_indices(
        df.height, val=val_fraction, test=test_fraction, seed=seed,
        method=split if task == "classification" else "random", labels=labels,
    )
    parts = {s: df[i] for s, i in idx.items()}
    if parts["train"].height == 0:
        raise DataError(f"the train split of {path} is empty ({df.height} rows)")
    prep = Prep.fit(parts["train"], features=features, label=label, task=task, scale=scale, image_shape=image_shape)
    xs, ys = {}, {}
    for s, part in parts.items():
        xs[s], ys[s] = prep.transform(part)
    info = prep.to_dict()
    info["source"] = {"path": str(path), "rows": df.height, "split": split, "seed": seed,
                      "fractions": {"val": val_fraction, "test": test_fraction},
                      "sizes": {s: p.height for s, p in parts.items()}}
    t = prep.target
    return Dataset(
        x=xs, y=ys, task=task, classes=prep.classes,
        target_scale=(t.get("mean", 0.0), t.get("std", 1.0)), prep=info,
    )


def _check_nulls(df: pl.DataFrame, label: str, features: list[str], path: str) -> None:
    nulls = df.null_count().row(0, named=True)
    if nulls[label]:
        raise DataError(f"label column {label!r} of {path} has {nulls[label]} null values; drop those rows first")
    bad = {c: n for c, n in nulls.items() if n and c in features}
    if bad:
        listed = ", ".join(f"{c} ({n})" for c, n in bad.items())
        raise DataError(f"feature columns of {path} hold nulls: {listed}; fill or drop them, or list other columns in dataset.features")
    for c in features:
        if df.schema[c].is_float() and not df.get_column(c).is_finite().all():
            raise DataError(f"feature column {c!r} of {path} holds inf or NaN values")


def _infer_task(task: str, y: pl.Series) -> str:
    if task not in TASKS:
        raise DataError(f"task={task!r} is not valid; choose one of {', '.join(TASKS)}")
    if task != "auto":
        if task == "regression" and not y.dtype.is_numeric():
            raise DataError(f"task=regression needs a numeric label; {y.name!r} is {y.dtype}")
        return task
    if y.dtype.is_float() and y.n_unique() > 20:
        return "regression"
    return "classification"
