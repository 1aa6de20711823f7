"""Seeded train / val / test splits: random, stratified by class, by a split column,
or by time (the latest rows are val, then test; nothing shuffled across a cut), and
K folds for cross-validation."""

from __future__ import annotations

import numpy as np

from dlexp.errors import DataError

METHODS = ("random", "stratified", "column", "time")
SPLIT_VALUES = ("train", "val", "test")


def split_indices(
    n: int, *, val: float, test: float, seed: int, method: str = "random", labels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Row indices per split. Stratified splits keep each class's share in every split."""
    if method not in METHODS:
        raise DataError(f"dataset.split={method!r} is not valid; choose one of {', '.join(METHODS)}")
    for key, f in (("val_fraction", val), ("test_fraction", test)):
        if not 0.0 <= f < 1.0:
            raise DataError(f"dataset.{key}={f} must be in [0, 1)")
    if val + test >= 1.0:
        raise DataError(f"dataset.val_fraction + dataset.test_fraction = {val + test} leaves no train rows")
    if method in ("column", "time"):
        raise DataError(f"dataset.split={method!r} needs its column: use by_column / by_time")
    rng = np.random.default_rng(seed)
    if method == "stratified" and labels is not None:
        parts = {"train": [], "val": [], "test": []}
        for cls in np.unique(labels):
            rows = np.flatnonzero(labels == cls)
            for split, idx in _cut(rng.permutation(rows), val, test).items():
                parts[split].append(idx)
        return _increasing({s: np.concatenate(p) if p else np.zeros(0, np.int64) for s, p in parts.items()}, n)
    return _increasing(_cut(rng.permutation(n), val, test), n)


def _increasing(parts: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Each split's rows (together rows 0..n-1 once each) in increasing order: a split
    number per row read back in row order, the same result as sorting, in one pass."""
    number = np.empty(n, np.int8)
    for i, idx in enumerate(parts.values()):
        number[idx] = i
    return {s: np.flatnonzero(number == i) for i, s in enumerate(parts)}


def _cut(perm: np.ndarray, val: float, test: float) -> dict[str, np.ndarray]:
    n = len(perm)
    n_test = int(round(n * test))
    n_val = int(round(n * val))
    return {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}


def by_column(values: np.ndarray, column: str, path: str) -> dict[str, np.ndarray]:
    """Row indices per split from a column holding train / val / test."""
    found = sorted({str(v) for v in np.unique(values.astype(str))})
    unknown = [v for v in found if v not in SPLIT_VALUES]
    if unknown:
        raise DataError(
            f"dataset.split_column={column!r} of {path} holds {unknown[:5]}; every value must be one of "
            f"{', '.join(SPLIT_VALUES)}"
        )
    return {s: np.flatnonzero(values == s) for s in SPLIT_VALUES}


def by_time(times: np.ndarray, *, val: float, test: float) -> dict[str, np.ndarray]:
    """The earliest rows train, then val, then test (a stable sort: ties keep file order)."""
    split_indices(len(times), val=val, test=test, seed=0)  # validates the fractions
    order = np.argsort(times, kind="stable")
    return _increasing(_cut(order[::-1], val, test), len(times))  # _cut takes test first: the latest rows


def kfold(n: int, k: int, seed: int, labels: np.ndarray | None = None) -> list[np.ndarray]:
    """K disjoint folds covering rows 0..n-1 once each; stratified when labels are given
    (each class dealt round-robin over the folds after a seeded shuffle)."""
    if not 2 <= k <= n:
        raise DataError(f"trainer.cv.folds={k} must be between 2 and the {n} rows available for folds")
    rng = np.random.default_rng([seed, k])
    if labels is None:
        return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]
    fold_of = np.empty(n, np.int64)
    offset = 0
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        fold_of[rows] = (offset + np.arange(len(rows))) % k
        offset += len(rows)  # the next class starts where this one stopped: folds stay even
    return [np.flatnonzero(fold_of == f) for f in range(k)]
