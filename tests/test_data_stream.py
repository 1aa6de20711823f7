"""Streaming: the streamed and the resident loaders give identical batches for the same seed."""

import jax
import numpy as np
import polars as pl
import pytest

from dlexp.data.loader import StreamingLoader, make_loader, read_rows
from dlexp.data.table import table


@pytest.fixture(params=["float64", "float32"])
def parquet(tmp_path, request):
    """float32: columns with an offset, standardized from float32 moments (numpy in the
    resident cut, Polars when streamed); float64: scaled by Polars on both paths."""
    rng = np.random.default_rng(0)
    n = 900
    df = pl.DataFrame(
        {f"f{i}": (rng.normal(size=n) * (i + 1) + 100.0 * i).astype(request.param) for i in range(6)}
    ).with_columns(c=pl.Series(rng.choice(["a", "b"], n)), label=pl.Series(rng.integers(0, 3, n)))
    path = tmp_path / "big.parquet"
    df.write_parquet(path, row_group_size=100)
    return str(path)


def test_read_rows_returns_rows_in_the_asked_order(tmp_path):
    df = pl.DataFrame({"x0": np.arange(1000, dtype=np.float32), "x1": -np.arange(1000, dtype=np.float32)})
    df.write_parquet(tmp_path / "r.parquet")
    rows = np.array([999, 3, 500, 3, 0])
    got = read_rows(str(tmp_path / "r.parquet"), ("x0", "x1"), rows, chunk_rows=64)
    assert got[:, 0].tolist() == rows.tolist() and got[:, 1].tolist() == (-rows).tolist()


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_streamed_and_resident_batches_are_identical(parquet, tmp_path, steps_per_call):
    kw = dict(path=parquet, label="label", categorical=["c"], cache_dir=str(tmp_path), seed=3)
    resident, streamed = table(stream=False, **kw), table(stream=True, **kw)
    assert streamed.x["train"] is None and streamed.stream.rows == resident.sizes()["train"]
    np.testing.assert_array_equal(streamed.x["val"], resident.x["val"])
    dev = jax.devices()[0]
    a = make_loader(resident, 32, 3, dev)
    b = make_loader(streamed, 32, 3, dev, steps_per_call=steps_per_call, buffer_mb=0.005)  # a few windows per epoch
    assert isinstance(b, StreamingLoader) and b.window_steps < b.steps_per_epoch
    for epoch in range(2):
        for start in range(0, a.steps_per_epoch, steps_per_call):
            n = min(steps_per_call, a.steps_per_epoch - start)
            ra, rb = a.call_args(epoch, start, n), b.call_args(epoch, start, n)
            for i in range(n):
                for u, v in zip(a.batch(ra, i), b.batch(rb, i)):
                    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    # a jump (a resumed run) restarts the reader at that step
    np.testing.assert_array_equal(
        np.asarray(a.batch(a.call_args(5, 7, 1), 0)[0]), np.asarray(b.batch(b.call_args(5, 7, 1), 0)[0])
    )
    b.close()


def test_stream_auto_streams_past_the_resident_limit(parquet, tmp_path):
    d = table(path=parquet, label="label", categorical=["c"], cache_dir=str(tmp_path), max_resident_mb=0.001)
    assert d.stream is not None and d.prep["source"]["streamed"]
    assert table(path=parquet, label="label", categorical=["c"], cache_dir=str(tmp_path)).stream is None


def test_streamed_and_resident_reports_agree_with_fills_and_outliers(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=600)
    a[::7], a[::50] = np.nan, 40.0
    df = pl.DataFrame({"a": a, "label": rng.integers(0, 3, 600)}).with_columns(
        c=pl.Series(rng.choice(["u", "v", "w"], 600)).replace("w", None)
    )
    df.write_parquet(tmp_path / "f.parquet")
    kw = dict(
        path=str(tmp_path / "f.parquet"),
        label="label",
        categorical=["c"],
        missing="mean",
        outliers="zscore",
        outlier_action="drop",
        cache_dir=str(tmp_path),
        seed=2,
    )
    resident, streamed = table(stream=False, **kw), table(stream=True, **kw)
    assert resident.prep["report"] == streamed.prep["report"] and resident.prep["report"]["nulls_filled"]["val"]
    assert resident.sizes() == streamed.sizes()
    np.testing.assert_array_equal(resident.x["test"], streamed.x["test"])
