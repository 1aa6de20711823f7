"""Time-series windows: hand-computed windows, time splits without overlap, train-only scaling, errors."""

import numpy as np
import polars as pl
import pytest

from dlexp.data import builtin
from dlexp.data.series import WindowPrep, timeseries, window_arrays
from dlexp.errors import DataError


def test_window_arrays_hand_computed():
    v = np.arange(10, dtype=np.float32)
    x, y, t = window_arrays(v[:, None], v, lookback=3, horizon=2, stride=2)
    assert t.tolist() == [3, 5, 7]
    assert x[:, :, 0].tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert y.tolist() == [[3, 4], [5, 6], [7, 8]]


@pytest.fixture()
def long_table(tmp_path):
    """Two ids, 20 steps each, rows shuffled: value = 100 * id + t."""
    rows = [(i, t, float(100 * i + t)) for i in range(2) for t in range(20)]
    df = pl.DataFrame(rows, schema=["id", "t", "value"], orient="row").sample(fraction=1.0, shuffle=True, seed=1)
    path = tmp_path / "long.csv"
    df.write_csv(path)
    return str(path)


def test_time_split_has_no_target_in_two_splits_and_scales_on_train_period(long_table):
    d = timeseries(
        path=long_table,
        target="value",
        id_column="id",
        time_column="t",
        lookback=4,
        horizon=2,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    # train period: t < 10 per id; val: 10..14; test: 15..19 (cuts at round(20*0.5), round(20*0.75))
    raw = {v for i in range(2) for v in (100 * i + np.arange(10))}
    stats = d.prep["stats"]["value"]
    assert np.isclose(stats["mean"], np.mean(sorted(raw)))
    assert np.isclose(stats["std"], np.std(sorted(raw)))
    unscale = lambda a: np.rint(a * stats["std"] + stats["mean"]).astype(int)
    t_of = lambda y: y % 100
    assert t_of(unscale(d.y["train"])).max() <= 9  # every train target lies in the train period
    assert t_of(unscale(d.y["val"])).min() >= 10 and t_of(unscale(d.y["val"])).max() <= 14
    assert t_of(unscale(d.y["test"])).min() >= 15
    # windows per id: train t=4..8 (5), val t=10..13 (4), test t=15..18 (4)
    assert d.sizes() == {"train": 10, "val": 8, "test": 8}
    # the inputs are the `lookback` steps before the first target
    x0, y0 = unscale(d.x["train"][0, :, 0]), unscale(d.y["train"][0])
    assert x0.tolist() == [0, 1, 2, 3] and y0.tolist() == [4, 5]
    assert d.target_scale == (stats["mean"], stats["std"]) and d.num_outputs == 2


def test_window_prep_round_trips_and_transforms_a_new_file(long_table):
    d = timeseries(path=long_table, target="value", id_column="id", time_column="t", lookback=4, horizon=1)
    prep = WindowPrep.from_dict(d.prep)
    x, y = prep.transform(pl.read_csv(long_table))
    assert x.shape == (2 * 16, 4, 1) and y.shape == (32,)


def test_window_longer_than_series_is_named(long_table):
    with pytest.raises(DataError, match=r"series id=0 .* 20 rows, fewer than dataset.lookback \+ dataset.horizon = 25"):
        timeseries(path=long_table, target="value", id_column="id", time_column="t", lookback=20, horizon=5)


def test_missing_target_column_is_named(long_table):
    with pytest.raises(DataError, match=r"dataset.target='sales' is not a column .*columns: id, t, value"):
        timeseries(path=long_table, target="sales", id_column="id")


def test_builtin_series_is_a_forecasting_set(cache_dir):
    d = builtin.series(cache_dir=cache_dir, ids=3, length=100, lookback=8, horizon=1)
    assert d.task == "regression" and d.input_shape == (8, 1) and d.num_outputs == 1
    # per id: train t=8..69 (62), val t=70..84 (15), test t=85..99 (15)
    assert d.sizes() == {"train": 186, "val": 45, "test": 45}
