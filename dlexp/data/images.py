"""Encoded images (PNG, JPEG, anything Pillow reads), decoded once into a cached table.

Two sources end here. A table column of encoded bytes: Polars `Binary`, or Hugging Face's
`struct{bytes, path}` (a null `bytes` is read from `path`). And an image folder,
`root/<class>/*.png` or `root/<split>/<class>/*.png`, listed into such a struct column of
paths. `decoded_source` (called by `dlexp.data.table`) decodes the column in a pool of
processes, converts every image to C channels and resizes it to `image_shape` [H, W, C] (with
no image_shape, every image must have the first one's size), and caches the table in Parquet,
keyed by the source's files; the pixels come back as a uint8 [H, W, C] Array column, the
image column the rest of the pipeline reads. A file that does not decode stops the load with
its name, or with `skip_bad` is left out and counted in the data report.

    python -m dlexp.data.images write-digits DIR        # sklearn's digits as DIR/<label>/<i>.png
    python -m dlexp.data.images write-digits FILE.parquet  # ... as a Hugging Face style table
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat

import numpy as np
import polars as pl
from PIL import Image

from dlexp.data.dataset import Dataset
from dlexp.data.shards import ShardSpec
from dlexp.data.sources import has_rows
from dlexp.errors import DataError

FORMAT = 1  # part of the cache key: bump when the decoded file changes
CHANNELS = {1: "L", 3: "RGB"}  # image_shape's C -> the Pillow mode every image is converted to
GRAY = ("1", "L", "LA", "I", "I;16", "F")  # modes read as one channel when image_shape is null
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_FOLDERS = ("train", "val", "test")
MIN_CHUNK = 256  # images per task sent to a worker: fewer and the pool costs more than it saves
FIRST = 64  # images tried for the size and channels when image_shape is null

Item = bytes | str | None  # encoded bytes, a file path, or nothing (a null image)
Shape = tuple[int, int, int]


def is_encoded(dtype: pl.DataType | None) -> bool:
    """Whether a column holds encoded images: Binary, or a struct with a `bytes` field."""
    if isinstance(dtype, pl.Struct):
        return any(f.name == "bytes" for f in dtype.fields)
    return dtype == pl.Binary


# --------------------------------------------------------------------------- decoded tables


def decoded_source(
    lf: pl.LazyFrame,
    path: str,
    column: str | None,
    image_shape: Sequence[int] | None,
    *,
    skip_bad: bool = False,
    cache_dir: str | None = None,
) -> tuple[pl.LazyFrame, int]:
    """(the table to read instead of `lf`, images skipped as undecodable).

    `lf` unchanged unless `column` holds encoded images; then the decoded table, written
    once per (source files, column, shape, skip_bad) under `<cache_dir>/images`. With no
    image_shape, the first images give it, so the cache is found without decoding the rest.
    """
    from dlexp.data.builtin import cached_parquet, spec_digest
    from dlexp.data.sources import collect
    from dlexp.data.table import _source_tag

    if column is None or not is_encoded(lf.collect_schema().get(column)) or not has_rows(lf):
        return lf, 0
    where = os.path.abspath(os.path.expanduser(path))
    base = where if os.path.isdir(where) else os.path.dirname(where)  # relative paths: beside the table
    head = _items(lf.select(column).head(FIRST).collect().to_series(), base)
    shape = _checked_shape(image_shape) or _first_shape(head, column, path)
    resize = image_shape is not None
    source = _source_tag(path, np.empty(0))  # the files' names, sizes and times
    spec = spec_digest(source=source, column=column, shape=shape, resize=resize, skip_bad=skip_bad, format=FORMAT)

    made: list[pl.DataFrame] = []  # a miss keeps the table it decoded rather than reading it back

    def make() -> pl.DataFrame:
        df = collect(lf, path)
        made.append(_raw_pixels(df, _items(df.get_column(column), base), column, shape, resize, path, skip_bad))
        return made[0]

    cached = cached_parquet(os.path.join(cache_dir or tempfile.gettempdir(), "images"), f"decoded_{spec}", make)
    decoded = made[0].lazy() if made else pl.scan_parquet(cached)
    skipped = lf.select(pl.len()).collect().item() - decoded.select(pl.len()).collect().item()
    return decoded.with_columns(pixels(column, shape)), int(skipped)


def decode_frame(
    df: pl.DataFrame,
    column: str,
    image_shape: Sequence[int] | None,
    *,
    where: str,
    skip_bad: bool = False,
    base_dir: str | None = None,
) -> tuple[pl.DataFrame, int]:
    """(df with `column` decoded to uint8 [H, W, C], rows skipped). A new file for a trained
    run goes through here with the run's image_shape, so it is shaped as training was.
    `where` names the source in errors; `base_dir` anchors relative paths."""
    items = _items(df.get_column(column), base_dir)
    shape = _checked_shape(image_shape) or _first_shape(items[:FIRST], column, where)
    raw = _raw_pixels(df, items, column, shape, image_shape is not None, where, skip_bad)
    return raw.with_columns(pixels(column, shape)), df.height - raw.height


def pixels(column: str, shape: Shape) -> pl.Expr:
    """The uint8 [H, W, C] Array column from its raw bytes (the cache's layout: Parquet
    writes and reads one value a row many times faster than a nested Array's H*W*C).
    Reshaped batch by batch: there it only relabels the values, which a lazy reshape does not."""
    flat = pl.col(column).bin.reinterpret(dtype=pl.Array(pl.UInt8, int(np.prod(shape))))
    return flat.map_batches(lambda s: s.reshape((-1, *shape)), return_dtype=pl.Array(pl.UInt8, shape))


def _raw_pixels(
    df: pl.DataFrame, items: list[Item], column: str, shape: Shape, resize: bool, where: str, skip_bad: bool
) -> pl.DataFrame:
    """df with `column` as raw uint8 pixel bytes, row-major [H, W, C]; an image that does not
    decode stops here, naming it, or with skip_bad leaves its row out."""
    raw, failures = decode_all(items, shape, resize=resize)
    sized = [(i, why) for i, kind, why in failures if kind == "size"]
    if sized:
        i, why = sized[0]
        raise DataError(
            f"{_name(items, i, column, where)} is {why}, but the first image is {shape[0]}x{shape[1]}; images "
            "of several sizes need dataset.image_shape=[H, W, C], to which each one is resized"
        )
    if failures and not skip_bad:
        i, _, why = failures[0]
        raise DataError(
            f"cannot decode {_name(items, i, column, where)} ({why}); {len(failures)} of {len(items)} images fail. "
            "Fix or remove them, or set dataset.skip_bad=true to leave them out (counted in the data report)"
        )
    df = df.with_columns(pl.Series(column, raw, dtype=pl.Binary))
    if failures:
        keep = np.ones(len(items), bool)
        keep[[i for i, _, _ in failures]] = False
        df = df.filter(pl.Series(keep))
    return df


def _checked_shape(image_shape: Sequence[int] | None) -> Shape | None:
    if image_shape is None:
        return None
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) < 1 or shape[2] not in CHANNELS:
        raise DataError(
            f"dataset.image_shape={list(image_shape)} is not valid for encoded images; give [H, W, C] "
            "with C = 1 (grayscale) or 3 (RGB)"
        )
    return shape  # type: ignore[return-value]  (three ints, checked above)


def _items(s: pl.Series, base_dir: str | None) -> list[Item]:
    """Each row's bytes, else its path (relative to `base_dir`), else None."""
    if s.dtype == pl.Binary:
        return s.to_list()
    data = s.struct.field("bytes").to_list()
    names = s.struct.field("path") if "path" in [f.name for f in s.dtype.fields] else None  # type: ignore[attr-defined]
    if names is None or all(b is not None for b in data):
        return data
    anchor = base_dir or os.getcwd()
    return [b if b is not None else (os.path.join(anchor, p) if p else None) for b, p in zip(data, names.to_list())]


def _name(items: list[Item], i: int, column: str, where: str) -> str:
    """An image as the user would find it: its file, else its row."""
    item = items[i]
    return item if isinstance(item, str) else f"the image in row {i} of column {column!r} of {where}"


def _first_shape(items: list[Item], column: str, where: str) -> Shape:
    """The size and channels of the first image that decodes: every other must match it."""
    for item in items:
        try:
            with _open(item) as im:
                return im.height, im.width, 1 if im.mode in GRAY else 3
        except _UNDECODABLE:
            continue
    raise DataError(
        f"none of the first {len(items)} images of column {column!r} of {where} decodes (the first: "
        f"{_name(items, 0, column, where)}); check that the column holds PNG / JPEG bytes"
    )


# --------------------------------------------------------------------------- decoding


def decode_all(items: list[Item], shape: Shape, *, resize: bool = True) -> tuple[list[bytes], list]:
    """(raw pixels of each image, failures as (row, "undecodable" | "size", why)), decoded in a
    process per core (a failed image's bytes are empty).

    Decoding is mostly Pillow's Python around a short C call, so threads barely overlap:
    processes do. Fork starts one in milliseconds and never re-imports the caller's __main__
    (spawn does, which breaks unguarded scripts); a worker runs Pillow and numpy only, never
    JAX or Polars, so their threads in the parent hold no lock it needs.
    """
    n = len(items)
    workers = min(len(os.sched_getaffinity(0)), n // MIN_CHUNK)
    if workers <= 1 or sys.platform != "linux" or multiprocessing.current_process().daemon:  # a daemon has no children
        return _decode_chunk(items, shape, resize, 0)
    size = max(MIN_CHUNK, -(-n // (workers * 4)))  # a few tasks per worker evens out uneven images
    starts = range(0, n, size)
    raw: list[bytes] = []
    failures: list = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")  # JAX's, for the reason above
        warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks")
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = (items[s : s + size] for s in starts)
            for part, bad in pool.map(_decode_chunk, parts, repeat(shape), repeat(resize), starts):
                raw += part
                failures += bad
    return raw, failures


def _decode_chunk(items: list[Item], shape: Shape, resize: bool, offset: int) -> tuple[list[bytes], list]:
    raw, failures = [], []
    for i, item in enumerate(items):
        try:
            raw.append(decode_image(item, shape, resize))
            continue
        except _WrongSize as e:
            failures.append((offset + i, "size", str(e)))
        except _UNDECODABLE as e:
            failures.append((offset + i, "undecodable", _reason(e)))
        raw.append(b"")  # keeps every image at its row
    return raw, failures


def decode_image(item: Item, shape: Shape, resize: bool = True) -> bytes:
    """Raw uint8 pixels, row-major [H, W, C], of encoded bytes or a file: converted to C
    channels and resized to H x W (or, with resize=False, checked to be H x W)."""
    h, w, c = shape
    with _open(item) as im:
        mode = CHANNELS[c]
        if (im.height, im.width) != (h, w):
            if not resize:
                raise _WrongSize(f"{im.height}x{im.width}")
            if im.format == "JPEG":
                im.draft(mode, (w, h))  # decode at a reduced scale: far less work for a large JPEG
        if im.mode != mode:
            im = im.convert(mode)
        if (im.height, im.width) != (h, w):
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        return im.tobytes()


def _open(item: Item) -> Image.Image:
    if item is None:
        raise ValueError("the row holds no image (null)")
    if isinstance(item, str):
        with open(item, "rb") as f:  # read whole: Pillow's many small reads cost more on a file
            item = f.read()
    return Image.open(io.BytesIO(item))


class _WrongSize(Exception):
    """An image of another size where every image must match (no image_shape to resize to)."""


# What Pillow raises for bytes it cannot decode: an unknown format, truncated data, a bad chunk
# (SyntaxError, for historical reasons), a decompression bomb; OSError covers a missing file.
_UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --------------------------------------------------------------------------- image folders


def image_folder(
    *,
    root: str,
    image_shape: list[int] | None = None,
    skip_bad: bool = False,
    split: str = "stratified",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    scale: str = "unit",
    augment: dict | None = None,
    task: str = "auto",
    seed: int = 0,
    cache_dir: str,
    shards: ShardSpec | None = None,
) -> Dataset:
    """Images in class folders, `root/<class>/*.png|jpg` (the folder names the label), or with
    a split level, `root/train|val|test/<class>/...` (which then sets the split). The listing
    is cached as a table of paths, decoded and prepared by `dlexp.data.table.table`."""
    from dlexp.data.builtin import cached_parquet, spec_digest
    from dlexp.data.table import table

    listing = list_folder(root)
    stamps = [(p, (st := os.stat(p)).st_size, st.st_mtime_ns) for p in listing.get_column("path").to_list()]
    by_folder = "split" in listing.columns
    frame = listing.select(
        "label",
        *(["split"] if by_folder else []),
        pl.struct(pl.lit(None, pl.Binary).alias("bytes"), "path").alias("image"),
    )
    path = cached_parquet(os.path.join(cache_dir, "images"), f"folder_{spec_digest(files=stamps)}", lambda: frame)
    return table(
        path=path,
        label="label",
        image="image",
        features=[],
        image_shape=image_shape,
        skip_bad=skip_bad,
        task=task,
        split="column" if by_folder else split,
        split_column="split" if by_folder else None,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        scale=scale,
        augment=augment,
        seed=seed,
        cache_dir=cache_dir,
        shards=shards,
    )


def list_folder(root: str) -> pl.DataFrame:
    """path, label (and split, if root's folders are train / val / test) of every image file."""
    root = os.path.abspath(os.path.expanduser(str(root)))
    if not os.path.isdir(root):
        raise DataError(f"dataset.root={root!r} is not a directory (cwd: {os.getcwd()})")
    top = _folders(root)
    by_split = bool(top) and set(top) <= set(SPLIT_FOLDERS)
    rows: list[tuple[str, str, str]] = []
    for part in top if by_split else [""]:
        for label in _folders(os.path.join(root, part)):
            folder = os.path.join(root, part, label)
            rows += [(os.path.join(folder, f), label, part) for f in sorted(os.listdir(folder)) if _is_image(f)]
    if not rows:
        layout = "root/<class>/*.png (or root/train/<class>/..., with val/ and test/ beside it)"
        raise DataError(f"dataset.root={root!r} holds no image files ({', '.join(EXTENSIONS)}) laid out as {layout}")
    frame = pl.DataFrame(rows, schema=["path", "label", "split"], orient="row")
    return frame if by_split else frame.drop("split")


def _folders(path: str) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in EXTENSIONS


# --------------------------------------------------------------------------- generated data


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (bundled, offline) as uint8 [1797, 8, 8] in 0-255, and labels."""
    import sklearn.datasets

    data, target = sklearn.datasets.load_digits(return_X_y=True)
    x = np.round(np.asarray(data).reshape(-1, 8, 8) * (255 / 16)).astype(np.uint8)  # its pixels are 0-16
    return x, np.asarray(target, np.int64)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_digits(out: str, *, splits: bool = False, seed: int = 0) -> str:
    """The digits as PNG files in class folders under `out` (with `splits`: under
    out/train|val|test, 70/15/15 at random by `seed`), or, when `out` ends in .parquet, as
    a table of `label` and a Hugging Face style `image` struct{bytes, path}."""
    x, y = digits_images()
    names = [f"{i:04d}.png" for i in range(len(y))]
    if out.endswith(".parquet"):
        image = pl.DataFrame({"bytes": [png_bytes(a) for a in x], "path": names}).to_struct("image")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        pl.DataFrame([image, pl.Series("label", y)]).write_parquet(out)
        return out
    part = np.random.default_rng(seed).choice(SPLIT_FOLDERS, size=len(y), p=[0.7, 0.15, 0.15])
    for a, label, name, s in zip(x, y, names, part):
        folder = os.path.join(out, str(s) if splits else "", str(label))
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(a).save(os.path.join(folder, name))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlexp.data.images", description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write-digits", help="sklearn's digits as PNG class folders, or a .parquet of encoded images")
    w.add_argument("out", help="a directory, or a file ending in .parquet")
    w.add_argument("--splits", action="store_true", help="folders out/train|val|test/<label>/ (70/15/15)")
    args = p.parse_args(argv)
    print(f"wrote {write_digits(args.out, splits=args.splits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
