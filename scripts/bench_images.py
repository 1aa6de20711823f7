"""Encoded image benchmarks, printed as ratios measured in one run.

    uv run python scripts/bench_images.py                    # 20,000 PNGs of 32x32 RGB (the issue's count)
    uv run python scripts/bench_images.py --size 64 --channels 1 --images 5000

1. decode + cache: `dlexp.data.images.decoded_source` on an image folder's listing (decoded in
   a process per core, written to the Parquet cache; a fresh cache each time) against a plain
   single-process Pillow loop over the same files into one uint8 array: ratio of speeds
   (target >= 1.5 on 2 cores);
   Also the decoding alone in a process per core (`decode_all`) against a thread per core
   (Pillow releases the GIL while it decodes, so threads were the other candidate);
2. cached second load: the same call finding its cache and reading it as the uint8
   [H, W, C] Array column the pipeline takes, against a raw `pl.read_parquet` of the same
   decoded pixels stored as such a column (as scripts/prepare_mnist.py writes MNIST): ratio
   of speeds (target >= 0.8). Also against a raw read of the cache file itself, whose pixels
   are raw bytes a row, not yet an image column (the floor: reading the bytes off disk).

Each pair runs in turns (A B A B ...), fastest of each, so a slow spell of a shared machine
falls on both alike; but a busy core slows a process pool more than one loop, so the
load average is printed beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from PIL import Image  # noqa: E402

from dlexp.data import images  # noqa: E402
from dlexp.data.builtin import cached_parquet  # noqa: E402
from scripts.bench_data import interleaved  # noqa: E402


def write_pngs(root: str, n: int, size: int, channels: int, classes: int = 10, seed: int = 0) -> None:
    """n PNG files in class folders: smooth blobs plus noise, so they compress like photos do."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = rng.integers(0, 256, (size // 4 + 1, size // 4 + 1, channels))
        fine = np.kron(coarse, np.ones((4, 4, 1)))[:size, :size] + rng.normal(0, 8, (size, size, channels))
        pixels = fine.clip(0, 255).astype(np.uint8)
        folder = os.path.join(root, f"c{i % classes}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(os.path.join(folder, f"{i:06d}.png"))


def pillow_loop(paths: list[str], mode: str) -> np.ndarray:
    """What one writes without dlexp: open, convert, stack, in one process."""
    return np.stack([np.asarray(Image.open(p).convert(mode)) for p in paths])


def decode_in_threads(items: list, shape: tuple[int, int, int], workers: int) -> list:
    """The same chunks as `images.decode_all`, on a thread per core instead of a process."""
    size = -(-len(items) // (workers * 4))
    with ThreadPoolExecutor(workers) as pool:
        chunks = [items[s : s + size] for s in range(0, len(items), size)]
        return list(pool.map(lambda c: images._decode_chunk(c, shape, True, 0), chunks))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--size", type=int, default=32, help="height and width of each image")
    p.add_argument("--channels", type=int, default=3, choices=[1, 3])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    shape = [args.size, args.size, args.channels]
    mode = images.CHANNELS[args.channels]
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "pngs")
        write_pngs(root, args.images, args.size, args.channels)
        listing = images.list_folder(root)
        paths = listing.get_column("path").to_list()
        frame = listing.select("label", pl.struct(pl.lit(None, pl.Binary).alias("bytes"), "path").alias("image"))
        source = cached_parquet(tmp, "listing", lambda: frame)
        caches = iter(range(10**6))

        def dlexp_decode(cache: str) -> pl.DataFrame:
            lf, _ = images.decoded_source(pl.scan_parquet(source), source, "image", shape, cache_dir=cache)
            return lf.collect()

        what = f"{args.images:,} PNGs of {args.size}x{args.size}x{args.channels}"
        print(f"{what}, {len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.2f}")
        first = interleaved(
            {
                "pillow loop": lambda: pillow_loop(paths, mode),
                "dlexp decode + cache": lambda: dlexp_decode(os.path.join(tmp, f"cold{next(caches)}")),
            },
            args.repeats,
        )
        cores, three = len(os.sched_getaffinity(0)), (args.size, args.size, args.channels)
        alone = interleaved(
            {
                "decode, processes": lambda: images.decode_all(paths, three),
                "decode, threads": lambda: decode_in_threads(paths, three, cores),
            },
            args.repeats,
        )
        warm = os.path.join(tmp, "warm")
        decoded = dlexp_decode(warm)
        assert decoded.height == args.images
        (cached,) = [os.path.join(warm, "images", f) for f in os.listdir(os.path.join(warm, "images"))]
        as_array = os.path.join(tmp, "as_array.parquet")
        decoded.write_parquet(as_array)
        second = interleaved(
            {
                "raw read, Array column": lambda: pl.read_parquet(as_array),
                "raw read, cache bytes": lambda: pl.read_parquet(cached),
                "dlexp cached load": lambda: dlexp_decode(warm),
            },
            args.repeats * 3,
        )
    print(f"load at the end {os.getloadavg()[0]:.2f} (other processes' work falls on the parallel side hardest)")
    for name, t in {**first, **alone, **second}.items():
        print(f"  {name:24s} {t:8.3f} s  ({args.images / t:,.0f} images/s)")
    load, decode = second["dlexp cached load"], first["dlexp decode + cache"]
    print(f"decode + cache vs Pillow loop:    {first['pillow loop'] / decode:.2f}x (target >= 1.5)")
    print(f"decoding, processes vs threads:   {alone['decode, threads'] / alone['decode, processes']:.2f}x")
    print(f"cached load vs raw read (Array):  {second['raw read, Array column'] / load:.2f}x (target >= 0.8)")
    print(f"cached load vs raw read (bytes):  {second['raw read, cache bytes'] / load:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
