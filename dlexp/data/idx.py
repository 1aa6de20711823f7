"""IDX files (MNIST, Fashion-MNIST) to a Parquet table with an image column.

An IDX file is a big-endian header (two zero bytes, a type code, the number of
dimensions, one uint32 per dimension) followed by the values; gzipped or not.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import polars as pl

from dlexp.errors import DataError

TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
PARTS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, TYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} values, the file holds {data.size}")
    return data.reshape(shape)


def find(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise DataError(f"{folder} holds no {stem} (or {stem}.gz); it needs the four standard MNIST IDX files")


def mnist_frame(folder: str, val_rows: int = 5000, seed: int = 0) -> pl.DataFrame:
    """image (Array uint8 [28, 28]), label, split (train / val / test): val is a seeded
    random `val_rows` of the training files; test is the t10k files."""
    frames = []
    for part, (images, labels) in PARTS.items():
        x, y = read_idx(find(folder, images)), read_idx(find(folder, labels))
        if len(x) != len(y):
            raise DataError(f"{folder}: {len(x)} {part} images but {len(y)} labels")
        split = np.full(len(x), part, dtype=object)
        if part == "train" and val_rows:
            split[np.random.default_rng(seed).choice(len(x), min(val_rows, len(x) - 1), replace=False)] = "val"
        frames.append(pl.DataFrame({"image": x, "label": y.astype(np.int64), "split": split.astype(str)}))
    return pl.concat(frames)
