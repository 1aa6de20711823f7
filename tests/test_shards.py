"""Data shards (trainer.data_shards) in one process: where the cuts fall, statistics combined
from shards equal the whole table's, and what cannot be sharded says so."""

import numpy as np
import polars as pl
import pytest

from dlexp.data.shards import ShardSpec, combine_stats, partial_stats, shard_bounds
from dlexp.data.table import table
from dlexp.errors import ConfigError, DataError
from dlexp.loop.plan import shard_steps


def test_shards_cut_at_file_boundaries_when_there_are_enough_files():
    assert shard_bounds([1000] * 4, 2) == [(0, 2000), (2000, 4000)]
    # the cut nearest half the rows, leaving each shard at least one file
    assert shard_bounds([3000, 100, 100, 100], 2) == [(0, 3000), (3000, 3300)]
    assert shard_bounds([10, 10, 10], 3) == [(0, 10), (10, 20), (20, 30)]


def test_fewer_files_than_shards_cut_even_row_ranges():
    assert shard_bounds([10], 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds([5, 5], 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]


@pytest.mark.parametrize("scale", ["standard", "minmax", "unit"])
def test_statistics_combined_from_shards_equal_the_whole_tables(scale):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 3))
    frame = pl.DataFrame(x, schema=["a", "b", "c"], orient="row")
    parts = np.stack([partial_stats(frame[lo:hi].lazy(), ["a", "b", "c"], scale) for lo, hi in shard_bounds([1000], 3)])
    stats = combine_stats(parts, ["a", "b", "c"], scale)
    if scale == "standard":
        np.testing.assert_allclose([stats[c]["mean"] for c in "abc"], x.mean(0), rtol=1e-12)
        np.testing.assert_allclose([stats[c]["std"] for c in "abc"], x.std(0), rtol=1e-12)
    elif scale == "minmax":
        np.testing.assert_array_equal([stats[c]["min"] for c in "abc"], x.min(0))
        np.testing.assert_allclose([stats[c]["range"] for c in "abc"], x.max(0) - x.min(0))
    else:  # one min and range for every column
        assert {stats[c]["min"] for c in "abc"} == {x.min()}


def table_file(tmp_path, rows=400):
    rng = np.random.default_rng(1)
    frame = pl.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "label": rng.integers(0, 2, size=rows),
        }
    )
    path = tmp_path / "t.parquet"
    frame.write_parquet(path)
    return str(path)


@pytest.mark.parametrize("stream", [False, True])
def test_one_process_holding_every_shard_prepares_like_the_whole_table(tmp_path, stream):
    path = table_file(tmp_path)
    whole = table(
        path=path, label="label", categorical=["colour"], seed=3, stream=stream, cache_dir=str(tmp_path / "c")
    )
    sharded = table(
        path=path,
        label="label",
        categorical=["colour"],
        seed=3,
        stream=stream,
        cache_dir=str(tmp_path / "c"),
        shards=ShardSpec(2, (0, 1)),
    )
    assert sharded.prep["categories"] == whole.prep["categories"]
    for c in ("a", "b"):
        assert sharded.prep["stats"][c] == pytest.approx(whole.prep["stats"][c], rel=1e-12)
    assert sharded.sizes() == whole.sizes()
    assert sharded.shards is not None and sharded.shards.rows_read() == 400
    for s in ("val", "test"):  # the same rows, in shard order: as sets of rows they agree
        np.testing.assert_allclose(np.sort(sharded.x[s], axis=0), np.sort(whole.x[s], axis=0), rtol=1e-6)


def test_what_cannot_be_sharded_names_trainer_data_shards(tmp_path):
    path = table_file(tmp_path)
    with pytest.raises(DataError, match=r"trainer.data_shards=2.*dataset.dedupe.*trainer.data_shards=1"):
        table(path=path, label="label", drop=["colour"], dedupe=True, shards=ShardSpec(2, (0, 1)))
    with pytest.raises(ConfigError, match=r"trainer.data_shards=3 does not split over 2 processes"):
        ShardSpec.for_process(3, 0, 2)
    with pytest.raises(ConfigError, match=r"trainer.batch_size=30 does not split over trainer.data_shards=4"):
        shard_steps(30, [100] * 4)
    with pytest.raises(ConfigError, match=r"data shard 1 holds 5 train rows"):
        shard_steps(32, [100, 5])


def test_shards_chosen_by_default_fall_back_to_reading_everything(tmp_path):
    path = table_file(tmp_path)
    data = table(path=path, label="label", drop=["colour"], dedupe=True, shards=ShardSpec(2, (0, 1), explicit=False))
    assert data.shards is None  # dedupe needs every row: read whole, no error
    assert ShardSpec.for_process(1, 1, 2) == ShardSpec(1, (0,))  # one shard: every process holds it


def test_trainer_options_that_need_every_row(compose):
    from dlexp.parallel import data_shards

    trainer = compose(["trainer.data_shards=2", "trainer.cv.folds=3"]).trainer
    with pytest.raises(ConfigError, match=r"trainer.data_shards=2 .*trainer.cv.*set trainer.data_shards=1"):
        data_shards(trainer)
    assert data_shards(compose(["trainer.data_shards=2"]).trainer) == ShardSpec(2, (0, 1))
    assert data_shards(compose(["trainer.cv.folds=3"]).trainer).count == 1  # the default: one shard
