"""Seeded train / val / test splits by fractions (random or stratified by class)."""

from __future__ import annotations

import numpy as np

from dlexp.errors import DataError

METHODS = ("random", "stratified")


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
    rng = np.random.default_rng(seed)
    if method == "stratified" and labels is not None:
        parts = {"train": [], "val": [], "test": []}
        for cls in np.unique(labels):
            rows = np.flatnonzero(labels == cls)
            for split, idx in _cut(rng.permutation(rows), val, test).items():
                parts[split].append(idx)
        return {s: np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for s, p in parts.items()}
    return {s: np.sort(idx) for s, idx in _cut(rng.permutation(n), val, test).items()}


def _cut(perm: np.ndarray, val: float, test: float) -> dict[str, np.ndarray]:
    n = len(perm)
    n_test = int(round(n * test))
    n_val = int(round(n * val))
    return {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}
