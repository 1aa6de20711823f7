"""Encoded images: bytes and Hugging Face struct columns, image folders, bad files, the cache,
and one run through the CLI (train, then evaluate and predict) on the digits written as PNG files."""

import os

import numpy as np
import polars as pl
import pytest
from conftest import read_json

from dlexp.data import images
from dlexp.data.report import report_text
from dlexp.data.table import table
from dlexp.errors import DataError
from dlexp.evaluate import evaluate, load_run


@pytest.fixture(scope="module")
def digits():
    return images.digits_images()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The digits as class folders, as train/val/test folders, and as a Hugging Face style table."""
    root = tmp_path_factory.mktemp("digits")
    return {
        "folders": images.write_digits(str(root / "folders")),
        "splits": images.write_digits(str(root / "splits"), splits=True),
        "hf": images.write_digits(str(root / "hf.parquet")),
    }


def small_folder(root, sizes=((8, 8),) * 6, bad: int = 0):
    """root/a/*.png and root/b/*.png of the given sizes, plus `bad` files that are not images."""
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        folder = root / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(images.png_bytes(rng.integers(0, 256, (h, w), np.uint8)))
    for i in range(bad):
        (root / "a" / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return str(root)


def test_a_bytes_column_and_a_hugging_face_struct_decode_to_the_original_pixels(written, digits, tmp_path):
    x, y = digits
    hf = written["hf"]
    plain = tmp_path / "bytes.parquet"
    pl.read_parquet(hf).with_columns(pl.col("image").struct.field("bytes")).write_parquet(plain)
    for path in (hf, str(plain)):
        lf, skipped = images.decoded_source(pl.scan_parquet(path), path, "image", None, cache_dir=str(tmp_path))
        df = lf.collect()
        assert skipped == 0 and df.schema["image"] == pl.Array(pl.UInt8, (8, 8, 1))
        np.testing.assert_array_equal(df["image"].to_numpy()[..., 0], x)  # PNG is lossless
        np.testing.assert_array_equal(df["label"].to_numpy(), y)

    data = table(path=hf, label="label", image="image", features=[], scale="none", cache_dir=str(tmp_path))
    assert data.input_shape == (8, 8, 1) and data.x["train"].max() == 255


def test_an_image_folder_with_and_without_a_split_level(written, tmp_path):
    flat = images.image_folder(root=written["folders"], cache_dir=str(tmp_path))
    assert flat.classes == [str(d) for d in range(10)] and sum(flat.sizes().values()) == 1797
    assert flat.input_shape == (8, 8, 1) and 0.0 <= flat.x["train"].min() and flat.x["train"].max() == 1.0  # unit

    split = images.image_folder(root=written["splits"], cache_dir=str(tmp_path))
    on_disk = {s: sum(len(f) for _, _, f in os.walk(os.path.join(written["splits"], s))) for s in split.sizes()}
    assert split.prep["source"]["split"] == "column" and split.sizes() == on_disk


def test_image_shape_resizes_every_image_and_without_it_sizes_must_match(tmp_path):
    mixed = small_folder(tmp_path / "mixed", sizes=[(8, 8), (8, 8), (8, 8), (12, 10), (8, 8), (8, 8)])
    with pytest.raises(DataError, match=r"3\.png is 12x10, but the first image is 8x8; .*dataset.image_shape"):
        images.image_folder(root=mixed, split="random", cache_dir=str(tmp_path))
    data = images.image_folder(root=mixed, image_shape=[6, 5, 3], split="random", cache_dir=str(tmp_path))
    assert data.input_shape == (6, 5, 3)
    with pytest.raises(DataError, match=r"image_shape=\[6, 5, 2\] is not valid .* C = 1 \(grayscale\) or 3"):
        images.image_folder(root=mixed, image_shape=[6, 5, 2], cache_dir=str(tmp_path))


def test_an_undecodable_file_stops_the_load_naming_it(tmp_path, cli):
    root = small_folder(tmp_path / "bad", bad=1)
    with pytest.raises(DataError, match=r"cannot decode .*/a/broken0\.png \(.*\); 1 of 7 images fail.*skip_bad=true"):
        images.image_folder(root=root, split="random", cache_dir=str(tmp_path))

    rows = pl.DataFrame({"image": [images.png_bytes(np.zeros((4, 4), np.uint8)), b"junk"], "label": [0, 1]})
    with pytest.raises(DataError, match=r"cannot decode the image in row 1 of column 'image' of f\.parquet"):
        images.decode_frame(rows, "image", None, where="f.parquet")

    proc = cli("dataset=image_folder", f"dataset.root={root}", "dataset.split=random", "model=cnn", check=False)
    assert proc.returncode == 2 and "broken0.png" in proc.stderr and "Traceback" not in proc.stderr


def test_skip_bad_leaves_out_and_counts_the_undecodable_files(tmp_path):
    root = small_folder(tmp_path / "bad", bad=2)
    for _ in range(2):  # the second load reads the cache, and counts the same
        data = images.image_folder(root=root, split="random", skip_bad=True, cache_dir=str(tmp_path))
        assert sum(data.sizes().values()) == 6 and data.prep["report"]["dropped"] == {"undecodable images": 2}
    assert "dropped: {'undecodable images': 2}" in report_text(data.prep)


def test_the_second_load_reads_the_cache_without_decoding(written, tmp_path, monkeypatch):
    images.image_folder(root=written["folders"], cache_dir=str(tmp_path))
    (decoded,) = [f for f in os.listdir(tmp_path / "images") if f.startswith("decoded_")]
    mtime = os.stat(tmp_path / "images" / decoded).st_mtime_ns

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "decode_all", no_decoding)
    again = images.image_folder(root=written["folders"], cache_dir=str(tmp_path))
    assert sum(again.sizes().values()) == 1797
    assert os.stat(tmp_path / "images" / decoded).st_mtime_ns == mtime


def test_train_evaluate_and_predict_on_an_image_folder_through_the_cli(cli, written, digits, tmp_path):
    run_dir = tmp_path / "run"
    cli(
        "dataset=image_folder",
        f"dataset.root={written['splits']}",
        "model=cnn",
        "model.channels=[16]",
        "model.dense=[32]",
        "trainer.epochs=2",
        "trainer.progress=false",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        check=True,
    )
    summary = read_json(run_dir / "summary.json")
    assert summary["test"]["accuracy"] > 0.4  # chance is 0.1
    assert read_json(run_dir / "prep.json")["image_shape"] == [8, 8, 1]

    result = evaluate(load_run(str(run_dir)), split="test")  # the test split, read again through the cache
    assert result["metrics"]["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-6)

    # A new file of encoded images (the Hugging Face layout): decoded to the run's image_shape.
    x, y = digits
    new = tmp_path / "new.parquet"
    pl.read_parquet(written["hf"]).head(200).write_parquet(new)
    out = tmp_path / "p.parquet"
    cli(str(run_dir), f"path={new}", f"out={out}", module="dlexp.predict", check=True)
    pred = pl.read_parquet(out)
    assert pred.height == 200 and (pred["prediction"].cast(pl.Int64) == pl.Series(y[:200])).mean() > 0.4
