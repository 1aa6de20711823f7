"""Built-in data sets that need no network.

Each is written once to Parquet under `paths.cache` and then read through
`dlexp.data.table.table`, exactly like a user's own file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from dlexp.data.dataset import Dataset
from dlexp.data.shards import ShardSpec
from dlexp.data.table import table


def cached_parquet(cache_dir: str, name: str, make: Callable[[], pl.DataFrame]) -> str:
    """Path of `<cache_dir>/<name>.parquet`, written atomically the first time."""
    cache_dir = os.path.expanduser(cache_dir)
    path = os.path.join(cache_dir, f"{name}.parquet")
    if not os.path.exists(path):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        make().write_parquet(tmp)
        os.replace(tmp, path)
    return path


def spec_digest(**spec) -> str:
    """A short name for generated data: same spec, same cached file."""
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _sklearn_frame(loader: str, pixel_names: bool = False) -> Callable[[], pl.DataFrame]:
    def make() -> pl.DataFrame:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        names = (
            [f"px_{i}" for i in range(bunch.data.shape[1])]
            if pixel_names
            else [str(n).replace(" ", "_") for n in bunch.feature_names]
        )
        df = pl.DataFrame(bunch.data.astype(np.float32), schema=names, orient="row")
        target = bunch.target
        if hasattr(bunch, "target_names") and loader != "load_diabetes":
            target = np.asarray(bunch.target_names)[target] if loader == "load_breast_cancer" else target
        return df.with_columns(pl.Series("label", target))

    return make


def _builtin(name: str, loader: str, *, image_shape: list[int] | None = None, pixel_names: bool = False):
    def load(
        *,
        cache_dir: str,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split: str = "stratified",
        scale: str = "standard",
        augment: dict | None = None,
        seed: int = 0,
        task: str = "auto",
        shards: ShardSpec | None = None,
    ) -> Dataset:
        path = cached_parquet(cache_dir, name, _sklearn_frame(loader, pixel_names))
        return table(
            path=path,
            label="label",
            image_shape=image_shape,
            task=task,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            split=split,
            scale=scale,
            augment=augment,
            seed=seed,
            shards=shards,
        )

    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"scikit-learn's bundled {name} data set, through the Parquet path."
    return load


digits = _builtin("digits", "load_digits", image_shape=[8, 8, 1], pixel_names=True)  # 1,797 8x8 images, 10 classes
breast_cancer = _builtin("breast_cancer", "load_breast_cancer")  # 569 rows, 30 features, 2 classes
wine = _builtin("wine", "load_wine")  # 178 rows, 13 features, 3 classes
diabetes = _builtin("diabetes", "load_diabetes")  # 442 rows, 10 features, regression


def synthetic(
    *,
    cache_dir: str,
    kind: str = "image",
    rows: int = 2000,
    shape: Sequence[int] = (8, 8, 1),
    features: int = 16,
    num_classes: int = 10,
    noise: float = 0.5,
    data_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split: str = "stratified",
    scale: str = "standard",
    seed: int = 0,
    task: str = "auto",
    shards: ShardSpec | None = None,
) -> Dataset:
    """Generated data of any size: class templates plus noise (image or tabular), or a
    noisy linear target when task=regression. `data_seed` fixes the rows; `seed` the split."""
    from dlexp.errors import DataError

    if kind not in ("image", "tabular"):
        raise DataError(f"dataset.kind={kind!r} is not valid; choose image or tabular")
    if rows < 1:
        raise DataError(f"dataset.rows={rows} must be at least 1")
    shape = [int(s) for s in shape] if kind == "image" else [int(features)]
    digest = spec_digest(kind=kind, rows=rows, shape=shape, classes=num_classes, noise=noise, seed=data_seed, task=task)

    def make() -> pl.DataFrame:
        rng = np.random.default_rng(data_seed)
        d = int(np.prod(shape))
        if task == "regression":
            x = rng.normal(size=(rows, d)).astype(np.float32)
            w = rng.normal(size=d) / np.sqrt(d)
            y = (x @ w + noise * rng.normal(size=rows)).astype(np.float32)
        else:
            templates = rng.normal(size=(num_classes, d))
            y = rng.integers(0, num_classes, size=rows).astype(np.int32)
            x = (templates[y] + noise * rng.normal(size=(rows, d))).astype(np.float32)
        df = pl.DataFrame(x, schema=[f"f_{i}" for i in range(d)], orient="row")
        return df.with_columns(pl.Series("label", y))

    path = cached_parquet(cache_dir, f"synthetic_{digest}", make)
    return table(
        path=path,
        label="label",
        image_shape=shape if kind == "image" else None,
        task="regression" if task == "regression" else "classification",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split=split,
        scale=scale,
        seed=seed,
        shards=shards,
    )


def series(
    *,
    cache_dir: str,
    ids: int = 8,
    length: int = 400,
    noise: float = 0.1,
    lookback: int = 32,
    horizon: int = 1,
    stride: int = 1,
    data_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Dataset:
    """Noisy sine waves (one per id, each its own period, phase and amplitude) as a long
    table `id, t, value`, cut into forecasting windows by `dlexp.data.series.timeseries`."""
    from dlexp.data.series import timeseries
    from dlexp.errors import DataError

    if ids < 1 or length < 1:
        raise DataError(f"dataset.ids={ids} and dataset.length={length} must be at least 1")
    digest = spec_digest(ids=ids, length=length, noise=noise, seed=data_seed)

    def make() -> pl.DataFrame:
        rng = np.random.default_rng(data_seed)
        t = np.arange(length)
        period = rng.uniform(16, 64, size=(ids, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(ids, 1))
        amp = rng.uniform(0.5, 2.0, size=(ids, 1))
        value = amp * np.sin(2 * np.pi * t / period + phase) + noise * rng.normal(size=(ids, length))
        return pl.DataFrame(
            {
                "id": np.repeat(np.arange(ids, dtype=np.int32), length),
                "t": np.tile(t.astype(np.int32), ids),
                "value": value.astype(np.float32).ravel(),
            }
        )

    path = cached_parquet(cache_dir, f"series_{digest}", make)
    return timeseries(
        path=path,
        target="value",
        features=["value"],
        id_column="id",
        time_column="t",
        lookback=lookback,
        horizon=horizon,
        stride=stride,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
