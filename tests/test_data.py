"""The Polars data path: splits, train-only scaling, label encoding, and its errors."""

import numpy as np
import polars as pl
import pytest

from dlexp.data import builtin
from dlexp.data.loader import EvalSet, epoch_order
from dlexp.data.splits import split_indices
from dlexp.data.table import table
from dlexp.errors import DataError


@pytest.fixture()
def frame_path(tmp_path):
    """A small table with a string label and a known numeric column."""
    rng = np.random.default_rng(0)
    n = 200
    df = pl.DataFrame(
        {
            "a": np.arange(n, dtype=np.float64),
            "b": rng.normal(size=n),
            "name": ["x"] * n,
            "label": np.where(np.arange(n) % 4 == 0, "cat", "dog"),
        }
    )
    path = tmp_path / "t.parquet"
    df.write_parquet(path)
    return str(path), df


def test_split_fractions_are_disjoint_and_cover_all_rows():
    idx = split_indices(1000, val=0.1, test=0.2, seed=3)
    sizes = {k: len(v) for k, v in idx.items()}
    assert sizes == {"train": 700, "val": 100, "test": 200}
    allrows = np.concatenate(list(idx.values()))
    assert len(np.unique(allrows)) == 1000


def test_split_is_seeded():
    a = split_indices(100, val=0.2, test=0.2, seed=1)
    b = split_indices(100, val=0.2, test=0.2, seed=1)
    c = split_indices(100, val=0.2, test=0.2, seed=2)
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)


def test_stratified_split_keeps_class_shares():
    labels = np.array([0] * 900 + [1] * 100)
    idx = split_indices(1000, val=0.1, test=0.1, seed=0, method="stratified", labels=labels)
    for split in ("val", "test"):
        assert (labels[idx[split]] == 1).sum() == 10


def test_standardization_is_fitted_on_train_only(frame_path):
    path, df = frame_path
    data = table(path=path, label="label", features=["a", "b"], seed=0)
    stats = data.prep["stats"]["a"]
    # Rows' `a` values are their own index, so the train split's raw values are recoverable.
    raw_train = data.x["train"][:, 0] * stats["std"] + stats["mean"]
    assert np.isclose(stats["mean"], raw_train.mean(), atol=1e-3)
    assert np.isclose(stats["std"], raw_train.std(), atol=1e-3)
    all_a = df["a"].to_numpy()
    assert not np.isclose(stats["mean"], all_a.mean(), atol=1e-6) or not np.isclose(
        stats["std"], all_a.std(), atol=1e-6
    )
    assert np.isclose(data.x["train"][:, 0].mean(), 0.0, atol=1e-5)
    assert np.isclose(data.x["train"][:, 0].std(), 1.0, atol=1e-4)


def test_minmax_scaling_hand_computed(tmp_path):
    df = pl.DataFrame({"v": [0.0, 10.0, 5.0, 2.0] * 10, "label": [0, 1] * 20})
    path = tmp_path / "m.csv"
    df.write_csv(path)
    data = table(path=str(path), label="label", scale="minmax", val_fraction=0.0, test_fraction=0.25, seed=0)
    assert data.prep["stats"]["v"] == {"min": 0.0, "range": 10.0}
    assert data.x["train"].min() == 0.0 and data.x["train"].max() == 1.0


def test_string_labels_are_encoded_in_sorted_order(frame_path):
    path, _ = frame_path
    data = table(path=path, label="label", features=["a", "b"])
    assert data.classes == ["cat", "dog"] and data.task == "classification"
    assert set(np.unique(data.y["train"])) == {0, 1}


def test_regression_is_inferred_from_float_label(tmp_path):
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300) * 5 + 3})
    path = tmp_path / "r.parquet"
    df.write_parquet(path)
    data = table(path=str(path), label="y")
    assert data.task == "regression" and data.num_outputs == 1
    assert abs(data.y["train"].mean()) < 1e-5  # targets standardized with train stats


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"dataset.path=.*nope.parquet.*no such file"):
        table(path=str(tmp_path / "nope.parquet"), label="y")


def test_glob_with_no_match_is_named(tmp_path):
    with pytest.raises(DataError, match="matches no file"):
        table(path=str(tmp_path / "*.parquet"), label="y")


def test_missing_label_lists_columns(frame_path):
    path, _ = frame_path
    with pytest.raises(DataError, match=r"dataset.label='target' is not a column .*columns: a, b, name, label"):
        table(path=path, label="target")


def test_missing_feature_is_named(frame_path):
    path, _ = frame_path
    with pytest.raises(DataError, match=r"dataset.features names 'zz'"):
        table(path=path, label="label", features=["a", "zz"])


def test_non_numeric_feature_is_named(frame_path):
    path, _ = frame_path
    with pytest.raises(DataError, match=r"non-numeric feature columns .*name \(String\)"):
        table(path=path, label="label")


def test_null_label_is_named(tmp_path):
    df = pl.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1, None, 0]})
    df.write_parquet(tmp_path / "n.parquet")
    with pytest.raises(DataError, match="label column 'y' .* 1 null"):
        table(path=str(tmp_path / "n.parquet"), label="y")


def test_empty_split_is_named(tmp_path):
    from dlexp.data.dataset import Dataset

    df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    df.write_parquet(tmp_path / "s.parquet")
    data = table(path=str(tmp_path / "s.parquet"), label="y", val_fraction=0.1, test_fraction=0.1, split="random")
    with pytest.raises(DataError, match="the val split is empty"):
        Dataset.check_nonempty(data)


def test_builtins_go_through_parquet(cache_dir):
    import os

    d = builtin.digits(cache_dir=cache_dir)
    assert d.input_shape == (8, 8, 1) and d.num_outputs == 10
    assert sum(d.sizes().values()) == 1797
    assert os.path.exists(os.path.join(cache_dir, "digits.parquet"))
    b = builtin.breast_cancer(cache_dir=cache_dir)
    assert b.classes == ["benign", "malignant"] and b.input_shape == (30,)
    w = builtin.wine(cache_dir=cache_dir)
    assert w.num_outputs == 3


def test_synthetic_is_seeded_and_sized(cache_dir):
    a = builtin.synthetic(cache_dir=cache_dir, rows=300, shape=[6, 6, 2])
    b = builtin.synthetic(cache_dir=cache_dir, rows=300, shape=[6, 6, 2])
    assert a.input_shape == (6, 6, 2) and sum(a.sizes().values()) == 300
    np.testing.assert_array_equal(a.x["train"], b.x["train"])
    t = builtin.synthetic(cache_dir=cache_dir, kind="tabular", features=5, rows=100, task="regression")
    assert t.task == "regression" and t.input_shape == (5,)


def test_epoch_order_is_a_seeded_permutation_per_epoch():
    a0, a1 = epoch_order(100, 0, 0, 32), epoch_order(100, 0, 1, 32)
    assert len(a0) == 96 and len(set(a0.tolist())) == 96
    assert (a0 != a1).any()
    assert (epoch_order(100, 0, 0, 32) == a0).all()


def test_eval_set_pads_with_zero_weight():
    import jax

    x = np.arange(10, dtype=np.float32)[:, None]
    es = EvalSet(x, np.arange(10), 4, jax.devices()[0])
    assert es.num_batches == 3 and float(es.w.sum()) == 10.0
