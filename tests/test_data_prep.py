"""Cleaning, encoding, scaling and feature-spec paths of `table`, against hand-computed values."""

import numpy as np
import polars as pl
import pytest

from dlexp.data.prep import Prep
from dlexp.data.report import report_text
from dlexp.data.table import table
from dlexp.errors import DataError


def write(tmp_path, df, name="t.parquet"):
    path = tmp_path / name
    {"parquet": df.write_parquet, "csv": df.write_csv, "arrow": df.write_ipc, "ndjson": df.write_ndjson}[
        name.rsplit(".", 1)[1]
    ](path)
    return str(path)


def by_column(val="val"):
    """Rows 0-5 train, 6-7 val, 8-9 test: the split is fixed, so every statistic is hand-computable."""
    return ["train"] * 6 + [val] * 2 + ["test"] * 2


def test_fill_mean_median_mode_constant_from_train_only(tmp_path):
    df = pl.DataFrame(
        {
            "a": [1.0, None, 3.0, 5.0, 7.0, 9.0, 1000.0, None, 2000.0, 3000.0],  # train mean 5, median 5
            "b": [1.0, 2.0, 2.0, None, 10.0, 4.0, 5.0, 5.0, 5.0, None],  # train median 2
            "c": ["x", "y", "y", None, "x", "y", "z", "z", "z", None],  # train mode y
            "d": [None, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "s": by_column(),
            "label": [0, 1] * 5,
        }
    )
    d = table(
        path=write(tmp_path, df),
        label="label",
        split="column",
        split_column="s",
        categorical=["c"],
        encode="ordinal",
        missing={"a": "mean", "b": "median", "c": "mode", "d": -4.0},
        scale="none",
    )
    assert d.prep["fills"] == {"a": 5.0, "b": 2.0, "c": "y", "d": -4.0}
    x = d.x["train"]  # columns a, b, d, c (numeric first, then categorical)
    assert x[:, 0].tolist() == [1, 5, 3, 5, 7, 9] and x[:, 1].tolist() == [1, 2, 2, 2, 10, 4]
    assert x[:, 2].tolist() == [-4, 1, 1, 1, 1, 1] and x[:, 3].tolist() == [0, 1, 1, 1, 0, 1]  # x=0, y=1
    assert d.x["val"][:, 0].tolist() == [1000, 5]  # val's null gets the train mean, not val's
    assert d.x["val"][:, 3].tolist() == [-1, -1]  # z never seen in training: ordinal -1
    assert d.x["test"][:, 3].tolist() == [-1, 1]  # unseen z, then a null filled with the mode y
    assert d.prep["report"]["nulls_filled"]["train"] == {"a": 1, "b": 1, "c": 1, "d": 1}


def test_missing_drop_rows_and_error_names_columns(tmp_path):
    df = pl.DataFrame({"a": [1.0, None, 3.0, 4.0] * 5, "label": [0, 1] * 10})
    path = write(tmp_path, df)
    d = table(path=path, label="label", missing="drop", split="random")
    assert sum(d.sizes().values()) == 15 and d.prep["report"]["dropped"]["rows with nulls"] == 5
    with pytest.raises(DataError, match=r"feature columns .* hold nulls: a \(5\); set dataset.missing"):
        table(path=path, label="label")


def test_nan_counts_as_missing(tmp_path):
    df = pl.DataFrame({"a": [1.0, float("nan"), 3.0, 5.0] * 5, "label": [0, 1] * 10})
    d = table(path=write(tmp_path, df), label="label", missing="median", split="random", scale="none")
    assert np.isfinite(d.x["train"]).all() and d.prep["fills"]["a"] == 3.0


def test_onehot_with_unseen_category_is_all_zeros(tmp_path):
    df = pl.DataFrame({"c": ["b", "a", "b", "a", "b", "a", "a", "c", "c", "b"], "s": by_column(), "label": [0, 1] * 5})
    d = table(path=write(tmp_path, df, "t.csv"), label="label", categorical=["c"], split="column", split_column="s")
    assert d.prep["categories"] == {"c": ["a", "b"]}
    assert d.x["train"].tolist() == [[0, 1], [1, 0], [0, 1], [1, 0], [0, 1], [1, 0]]
    assert d.x["val"].tolist() == [[1, 0], [0, 0]]  # c unseen in train: no column fires


def test_zscore_clip_and_iqr_drop_hand_computed(tmp_path):
    a = [1.0, 2.0, 3.0, 4.0, 100.0, 2.0, -50.0, 500.0, 3.0, 3.0]
    df = pl.DataFrame({"a": a, "s": by_column(), "label": [0, 1] * 5})
    path = write(tmp_path, df)
    train = np.array(a[:6])
    m, s = train.mean(), train.std()
    d = table(
        path=path,
        label="label",
        split="column",
        split_column="s",
        outliers="zscore",
        outlier_threshold=1.0,
        scale="none",
    )
    lo, hi = m - s, m + s
    assert np.allclose(d.prep["bounds"]["a"], [lo, hi])
    assert np.allclose(d.x["train"][:, 0], np.clip(train, lo, hi)) and np.allclose(d.x["val"][:, 0], [lo, hi])
    assert d.prep["report"]["outliers_clipped"] == {"train": {"a": 1}, "val": {"a": 2}, "test": {}}
    q1, q3 = np.percentile(train, [25, 75])  # 2.0, 3.75
    d = table(
        path=path, label="label", split="column", split_column="s", outliers="iqr", outlier_action="drop", scale="none"
    )
    assert np.allclose(d.prep["bounds"]["a"], [q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)])
    assert d.x["train"][:, 0].tolist() == [1, 2, 3, 4, 2]  # 100 dropped from train
    assert d.sizes()["val"] == 2 and d.prep["report"]["dropped"]["train outliers"] == 1


def test_standard_and_minmax_scaling_fitted_on_train_only(tmp_path):
    df = pl.DataFrame(
        {"a": [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 1e6, -1e6, 1e9, 5.0], "s": by_column(), "label": [0, 1] * 5}
    )
    path = write(tmp_path, df, "t.arrow")
    d = table(path=path, label="label", split="column", split_column="s")
    mean, std = 5.0, np.std([0, 2, 4, 6, 8, 10])  # val / test values would move both a lot
    assert np.isclose(d.prep["stats"]["a"]["mean"], mean) and np.isclose(d.prep["stats"]["a"]["std"], std)
    assert np.allclose(d.x["test"][:, 0], (np.array([1e9, 5.0]) - mean) / std, rtol=1e-5)
    d = table(path=path, label="label", split="column", split_column="s", scale="minmax")
    assert d.prep["stats"]["a"] == {"min": 0.0, "range": 10.0}
    assert np.allclose(d.x["train"][:, 0], [0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_pixel_columns_unit_and_channel_scaling(tmp_path):
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, size=(40, 2 * 2 * 2)).astype(np.float64)
    df = pl.DataFrame(px, schema=[f"p{i}" for i in range(8)], orient="row").with_columns(label=pl.Series([0, 1] * 20))
    path = write(tmp_path, df)
    d = table(
        path=path,
        label="label",
        features=["^p\\d$"],
        image_shape=[2, 2, 2],
        scale="unit",
        split="random",
        val_fraction=0.25,
        test_fraction=0.25,
        seed=1,
    )
    train_rows = np.sort(d.rows["train"])
    lo, hi = px[train_rows].min(), px[train_rows].max()
    assert d.input_shape == (2, 2, 2)
    assert np.allclose(d.x["train"].reshape(-1, 8), (px[d.rows["train"]] - lo) / (hi - lo))
    d = table(path=path, label="label", image_shape=[2, 2, 2], scale="channel", split="random", seed=1)
    for ch in range(2):
        vals = px[d.rows["train"]][:, ch::2]
        assert np.isclose(d.x["train"][..., ch].mean(), 0.0, atol=1e-5)
        assert np.isclose(d.prep["stats"][f"p{ch}"]["mean"], vals.mean())


def test_image_array_column_and_sequence_columns(tmp_path):
    imgs = np.arange(10 * 3 * 3, dtype=np.uint8).reshape(10, 3, 3)
    df = pl.DataFrame({"img": imgs, "s": by_column(), "label": [0, 1] * 5})
    d = table(path=write(tmp_path, df), label="label", image="img", scale="unit", split="column", split_column="s")
    assert d.input_shape == (3, 3, 1) and d.prep["stats"]["img"] == {"min": 0.0, "range": 53.0}
    assert np.allclose(d.x["val"][0, :, :, 0], imgs[6] / 53.0)
    q = [[1.0, 2.0, 3.0], [4.0], [], [5.0, 6.0], [1.0], [3.0], [7.0], [9.0], [1.0], [1.0]]
    seq = pl.DataFrame({"q": q, "s": by_column(), "label": [0, 1] * 5})
    d = table(
        path=write(tmp_path, seq, "q.parquet"),
        label="label",
        sequence=["q"],
        sequence_length=2,
        scale="none",
        split="column",
        split_column="s",
    )
    assert d.input_shape == (2, 1)  # cut to 2, zero-padded at the end
    assert d.x["train"][:, :, 0].tolist() == [[1, 2], [4, 0], [0, 0], [5, 6], [1, 0], [3, 0]]
    d = table(path=write(tmp_path, seq, "q.parquet"), label="label", sequence=["q"], split="column", split_column="s")
    values = np.array([1, 2, 3, 4, 5, 6, 1, 3.0])  # train elements; padding stays 0 after scaling
    assert d.input_shape == (3, 1)  # the longest train sequence
    assert np.allclose(d.x["train"][1, :, 0], [(4 - values.mean()) / values.std(), 0, 0])


def test_weights_dedupe_regex_and_drop(tmp_path):
    df = pl.DataFrame(
        {
            "f_1": [1.0, 1.0, 2.0, 3.0] * 5,
            "f_2": [0.0, 0.0, 1.0, 2.0] * 5,
            "id": list(range(20)),
            "w": [2.0] * 20,
            "label": [0, 0, 1, 1] * 5,
        }
    )
    d = table(path=write(tmp_path, df, "t.ndjson"), label="label", features=["^f_.*$"], weight="w", split="random")
    assert d.prep["features"] == ["f_1", "f_2"] and d.weights["train"].tolist() == [2.0] * 14
    d = table(
        path=write(tmp_path, df.drop("id")),
        label="label",
        dedupe=True,
        split="random",
        val_fraction=0.0,
        test_fraction=0.0,
    )
    assert d.prep["report"]["dropped"]["duplicates"] == 17 and d.sizes()["train"] == 3


def test_split_by_time_keeps_the_latest_rows_for_test(tmp_path):
    df = pl.DataFrame({"t": list(range(20))[::-1], "a": np.arange(20.0), "label": [0, 1] * 10})
    d = table(
        path=write(tmp_path, df),
        label="label",
        features=["a"],
        split="time",
        time_column="t",
        val_fraction=0.2,
        test_fraction=0.2,
    )
    # time t = 19 - a: the largest t (smallest a) are the newest rows
    assert sorted(d.rows["test"].tolist()) == [0, 1, 2, 3] and sorted(d.rows["val"].tolist()) == [4, 5, 6, 7]


def test_prep_round_trips_for_a_new_file(tmp_path):
    df = pl.DataFrame({"a": [1.0, None, 3.0, 4.0] * 5, "c": ["u", "v"] * 10, "label": ["n", "y"] * 10})
    d = table(path=write(tmp_path, df), label="label", categorical=["c"], missing="mean", split="random")
    prep = Prep.from_dict(d.prep)
    new = pl.DataFrame({"a": [None, 2.0], "c": ["v", "w"], "label": ["y", "n"]})
    x, y = prep.transform(new)
    assert x.shape == (2, 3) and y.tolist() == [1, 0] and x[1, 1:].tolist() == [0.0, 0.0]
    assert "classes (train)" in report_text(d.prep)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(categorical=["nope"]), r"dataset.categorical names 'nope', not a column .*columns: a, c, s, label"),
        (dict(features=["^z.*$"]), r"the pattern '\^z\.\*\$' matches no column"),
        (dict(split="column"), r"dataset.split=column needs dataset.split_column"),
        (dict(split="column", split_column="c"), r"dataset.split_column='c' .* holds \['u', 'v'\]"),
        (dict(missing="sometimes", categorical=["c"]), r"dataset.missing='sometimes' for column 'a' is not valid"),
        (dict(outliers="zscore", outlier_action="keep", categorical=["c"]), r"dataset.outlier_action='keep'"),
        (dict(scale="log", categorical=["c"]), r"dataset.scale='log' is not valid"),
    ],
)
def test_bad_spec_is_named(tmp_path, kwargs, message):
    df = pl.DataFrame({"a": [1.0, 2.0] * 5, "c": ["u", "v"] * 5, "s": by_column(), "label": [0, 1] * 5})
    with pytest.raises(DataError, match=message):
        table(path=write(tmp_path, df), label="label", **{"features": ["a"], **kwargs})


def test_non_numeric_feature_says_declare_categorical(tmp_path):
    df = pl.DataFrame({"a": [1.0, 2.0] * 5, "c": ["u", "v"] * 5, "label": [0, 1] * 5})
    with pytest.raises(
        DataError, match=r"non-numeric feature columns .*c \(String\); declare them in dataset.categorical"
    ):
        table(path=write(tmp_path, df), label="label")


def test_float32_columns_scale_like_float64(tmp_path):
    """Float32 inputs are scaled in float32; the mean's rounding must not shift every value."""
    rng = np.random.default_rng(0)
    a = (1000.0 + 0.01 * rng.normal(size=400)).astype(np.float32)  # a large offset, a small spread
    df = pl.DataFrame({"a": a, "b": a.astype(np.float64), "label": [0, 1] * 200})
    d = table(path=write(tmp_path, df), label="label", split="random", seed=0)
    s = d.prep["stats"]["a"]
    want = ((a.astype(np.float64)[np.sort(d.rows["train"])] - s["mean"]) / s["std"]).astype(np.float32)
    np.testing.assert_allclose(d.x["train"][:, 0], want, rtol=0, atol=4 * np.spacing(np.abs(want)).max())
    np.testing.assert_allclose(d.x["train"][:, 0], d.x["train"][:, 1], rtol=0, atol=4 * np.spacing(np.abs(want)).max())
    assert abs(float(d.x["train"][:, 0].astype(np.float64).mean())) < 1e-5


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_rows_cut_and_scaled_in_slices_equal_the_whole_table_transform(monkeypatch, scale):
    """transform_rows (slice by slice, scaled in cache) == transform_x then a row gather,
    bit for bit: float32 columns with means that float32 cannot hold (two-part shift), a
    Float64 column, a fill, a clip, a one-hot column; sorted and unsorted row sets."""
    import dlexp.data.gather as gather

    rng = np.random.default_rng(0)
    n = 1000
    df = pl.DataFrame(
        {
            "a": (rng.normal(size=n) * 3 + 1000.1).astype(np.float32),
            "b": rng.normal(size=n).astype(np.float32),
            "c": rng.normal(size=n) * 1e3,  # Float64: scaled by Polars, passed through
            "k": rng.choice(["x", "y", "z"], size=n),
            "y": rng.integers(0, 2, size=n),
        }
    ).with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("b")).alias("b"))
    prep = Prep(["a", "b", "c"], "y", "classification", scale, classes=[0, 1], categorical=["k"], outliers="zscore")
    prep.fit(df.lazy(), rules={"b": "mean"}, threshold=2.0)
    assert prep.bounds and prep.fills
    monkeypatch.setattr(gather, "SLICE_ROWS", 64)  # many slices, runs crossing their edges
    whole = prep.transform_x(df)
    rows = {"train": np.sort(rng.choice(n, 700, replace=False)), "val": np.arange(0, n, 3)}
    for cut in (rows, {"shuffled": rng.permutation(n)[:500]}):
        got = prep.transform_rows(df, cut)
        for s, idx in cut.items():
            assert got[s].dtype == np.float32 and got[s].flags.c_contiguous
            np.testing.assert_array_equal(got[s], whole[idx])


def _moment_frame(n: int = 1000, big: float = 1.0) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    a = (rng.normal(size=n) * 3 + 1000.1).astype(np.float32)  # an offset float32 sums must survive
    return pl.DataFrame(
        {
            "a": a * np.float32(big),  # 1e20: float32 squares overflow, float64 moments then
            "b": rng.normal(size=n).astype(np.float32),
            "c": rng.normal(size=n) * 1e3,  # Float64: not a moment column
            "k": rng.choice(["x", "y", "z"], size=n),
            "y": rng.integers(0, 2, size=n),
        }
    ).with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("b")).alias("b"))


@pytest.mark.parametrize("big", [1.0, 1e20])
def test_moments_summed_in_the_cut_equal_the_polars_fit(monkeypatch, big):
    """The resident path fits the standard scaling of float32 inputs while it cuts the arrays
    (numpy, slice by slice); the streamed path fits it with Polars. Same float32 affine, same
    arrays bit for bit, both near the float64 mean and std of the filled, clipped values."""
    import dlexp.data.gather as gather
    from dlexp.data.prep import _float32_affine

    df = _moment_frame(big=big)
    rng = np.random.default_rng(1)
    rows = {"train": np.sort(rng.choice(df.height, 700, replace=False)), "val": np.arange(0, df.height, 3)}
    mask = np.zeros(df.height, bool)
    mask[rows["train"]] = True
    train = df.lazy().filter(pl.lit(pl.Series(mask)))
    monkeypatch.setattr(gather, "SLICE_ROWS", 64)  # partial sums from many slices
    make = lambda: Prep(
        ["a", "b", "c"], "y", "classification", "standard", classes=[0, 1], categorical=["k"], outliers="zscore"
    )  # noqa: E731
    polars_fit = make().fit(train, rules={"b": "mean"}, threshold=2.0)
    assert polars_fit.moment_columns(df.schema) == ["a", "b"]
    cut = make().fit(train, rules={"b": "mean"}, threshold=2.0, defer_moments=True)
    assert "a" not in cut.stats and "c" in cut.stats  # left to the cut
    got = cut.transform_rows(df, rows)
    for c in ("a", "b", "c"):
        assert cut.stats[c]["mean"] == pytest.approx(polars_fit.stats[c]["mean"], rel=1e-12)
        assert cut.stats[c]["std"] == pytest.approx(polars_fit.stats[c]["std"], rel=1e-12)
        assert _float32_affine(cut.stats[c]) == _float32_affine(polars_fit.stats[c])
    want = polars_fit.transform_rows(df, rows)
    for s in rows:
        np.testing.assert_array_equal(got[s], want[s])
    # against numpy in float64, over the train values as the model sees them (filled, clipped)
    values = df.select(polars_fit._input_expr(c, pl.Float32).alias(c) for c in ("a", "b")).to_numpy()[rows["train"]]
    for j, c in enumerate(("a", "b")):
        v = values[:, j].astype(np.float64)
        assert cut.stats[c]["mean"] == pytest.approx(v.mean(), rel=1e-7, abs=1e-9)
        assert cut.stats[c]["std"] == pytest.approx(v.std(), rel=1e-6)
    again = make().fit(train, rules={"b": "mean"}, threshold=2.0, defer_moments=True)
    again.transform_rows(df, rows)
    assert again.stats == cut.stats  # the cut's sums do not depend on thread timing


def test_a_column_too_large_for_float32_scaling_is_cut_again_and_scaled_in_float64():
    """Values near 1e34 fit float32, but a mean beyond FLOAT32_SAFE must be scaled by Polars
    in float64: the resident cut then cuts again, equal to the streamed path's transform."""
    df = _moment_frame(big=1e31)
    rows = {"train": np.arange(0, df.height, 2), "test": np.arange(1, df.height, 2)}
    mask = np.zeros(df.height, bool)
    mask[rows["train"]] = True
    train = df.lazy().filter(pl.lit(pl.Series(mask)))
    make = lambda: Prep(["a", "b", "c"], "y", "classification", "standard", classes=[0, 1])  # noqa: E731
    polars_fit = make().fit(train, rules={"b": "mean"})
    cut = make().fit(train, rules={"b": "mean"}, defer_moments=True)
    got = cut.transform_rows(df, rows)
    assert cut.stats["a"]["mean"] > 1e30 and not cut._float32_exact("a", df.schema["a"])
    for c, st in polars_fit.stats.items():
        assert cut.stats[c] == pytest.approx(st, rel=1e-12)
    want = polars_fit.transform_rows(df, rows)
    for s in rows:
        np.testing.assert_array_equal(got[s], want[s])


def _float32_frame(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "a": (rng.normal(size=n) * 3 + 1000.1).astype(np.float32),  # a mean float32 cannot hold
            "b": rng.normal(size=n).astype(np.float32),
            "i": rng.integers(-100, 100, size=n).astype(np.int16),
            "w": rng.uniform(0.5, 2.0, size=n),
            "r": rng.normal(size=n),  # a regression target
            "label": rng.integers(0, 3, size=n),
        }
    )


def _spy_pieces(monkeypatch) -> list:
    """The type of each table `dlexp.data.gather` cuts (a LazyFrame: read as it is cut)."""
    import dlexp.data.gather as gather

    seen, pieces = [], gather._pieces
    monkeypatch.setattr(gather, "SLICE_ROWS", 64)
    monkeypatch.setattr(gather, "READ_ROWS", 200)  # many batches, each cut into slices, the last one short
    monkeypatch.setattr(gather, "_pieces", lambda t, whole: seen.append(type(t)) or pieces(t, whole))
    return seen


@pytest.mark.parametrize("label, split", [("label", "stratified"), ("r", "random")])
def test_one_pass_read_and_cut_equals_the_whole_table_path(tmp_path, monkeypatch, label, split):
    """float32-exact features under the default preparation are cut from the batches Polars
    reads (the table never whole in memory): the same arrays bit for bit, the same fit,
    labels and weights, as collecting the table first; and the same for a resplit."""
    import dlexp.data.table as table_module

    path = write(tmp_path, _float32_frame().drop("r" if label == "label" else "label"))
    seen = _spy_pieces(monkeypatch)
    kw = dict(path=path, label=label, weight="w", split=split, seed=3)
    one_pass = table(**kw)
    assert seen == [pl.LazyFrame]
    monkeypatch.setattr(table_module, "_in_one_pass", lambda *a: False)
    whole = table(**kw)
    assert seen[1:] == [pl.DataFrame]
    assert one_pass.prep == whole.prep and one_pass.task == whole.task
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(one_pass.x[s], whole.x[s])
        np.testing.assert_array_equal(one_pass.y[s], whole.y[s])
        np.testing.assert_array_equal(one_pass.weights[s], whole.weights[s])
    half = {**whole.rows, "train": whole.rows["train"][::2]}
    np.testing.assert_array_equal(one_pass.resplit(half).x["train"], whole.resplit(half).x["train"])


@pytest.mark.parametrize("row", [0, 500, 999])
@pytest.mark.parametrize(
    "bad, message",
    [
        (("b", float("nan")), r"hold nulls: b \(1\)"),
        (("i", None), r"hold nulls: i \(1\)"),
        (("a", float("inf")), r"hold inf values: a \(1\)"),
    ],
)
def test_one_pass_read_with_a_bad_value_in_any_split_gets_the_whole_table_checks(
    tmp_path, monkeypatch, bad, message, row
):
    """The one-pass cut has no checks before it: a value it sums as not finite, in whichever
    split its row falls, sends the table through the usual checks, with their message."""
    col, value = bad
    df = _float32_frame().drop("r").with_row_index("k")
    df = df.with_columns(pl.when(pl.col("k") == row).then(value).otherwise(pl.col(col)).alias(col)).drop("k")
    seen = _spy_pieces(monkeypatch)
    with pytest.raises(DataError, match=message):
        table(path=write(tmp_path, df), label="label", weight="w", split="random")
    assert seen == [pl.LazyFrame]  # tried in one pass, then checked whole (the checks raise before any cut)


def test_one_pass_sums_too_large_for_float32_fall_back_to_float64_moments(tmp_path, monkeypatch):
    """Finite values whose float32 squares overflow: not an error, the whole-table path
    fits them in float64, as it does when no one-pass read is tried."""
    df = _float32_frame().drop("r").with_columns((pl.col("b") * 1e25).cast(pl.Float32))
    seen = _spy_pieces(monkeypatch)
    d = table(path=write(tmp_path, df), label="label", weight="w", split="random")
    assert seen == [pl.LazyFrame, pl.DataFrame]
    x = d.x["train"][:, 1].astype(np.float64)
    assert np.isfinite(d.x["train"]).all() and abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-3
