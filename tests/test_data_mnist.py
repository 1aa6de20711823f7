"""prepare_mnist on tiny IDX files the test writes itself (gzipped and not), then dataset=mnist."""

import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from conftest import ROOT

from dlexp.data.idx import read_idx
from dlexp.errors import DataError


def write_idx(path, array, gz):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    head = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb").write(body)


@pytest.fixture()
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem, n, gz in (("train", 60, True), ("t10k", 20, False)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = (rng.integers(0, 50, size=(n, 28, 28)) + labels[:, None, None] * 20).astype(np.uint8)
        write_idx(folder / f"{stem}-images-idx3-ubyte", images, gz)
        write_idx(folder / f"{stem}-labels-idx1-ubyte", labels, gz)
    return folder


def test_read_idx_round_trips(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3", a, gz=True)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a-idx3.gz")), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(str(tmp_path / "bad"))


def test_prepare_mnist_then_train_on_it(idx_folder, tmp_path, cli):
    out = tmp_path / "mnist.parquet"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_mnist.py"), str(idx_folder), str(out), "--val-rows", "10"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    df = pl.read_parquet(out)
    assert df.height == 80 and df.schema["image"] == pl.Array(pl.UInt8, (28, 28))
    assert dict(df.group_by("split").len().iter_rows()) == {"train": 50, "val": 10, "test": 20}
    cli(
        "dataset=mnist",
        f"dataset.path={out}",
        "model=mlp",
        "model.hidden=[16]",
        "trainer.steps=2",
        "trainer.batch_size=16",
        "trainer.progress=false",
        "logger=jsonl",
        f"hydra.run.dir={tmp_path}/run",
        check=True,
    )
    prep = json.loads((tmp_path / "run" / "prep.json").read_text())
    assert prep["image_shape"] == [28, 28, 1] and prep["source"]["sizes"] == {"train": 50, "val": 10, "test": 20}
    assert prep["stats"]["image"]["min"] == 0.0  # unit scaling: train pixel range


def test_prepare_mnist_names_a_missing_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_mnist.py"), str(tmp_path), "o.parquet"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "holds no train-images-idx3-ubyte" in proc.stderr
