"""Data benchmarks, printed as ratios measured in one run.

    uv run python scripts/bench_data.py                       # 1,000,000 x 100 (the issue's sizes)
    uv run python scripts/bench_data.py --rows 200000 --quick # a smaller check
    uv run python scripts/bench_data.py --only load           # one of load / train / memory

1. load + prepare (dlexp.data.table: checks, split, train-fitted scaling, float32
   arrays) against plain `pl.read_parquet(path).to_numpy()`: ratio of speeds (target >= 0.8),
   in turns in one process and once more with every load in a fresh process (with its
   peak resident memory);
2. training throughput (samples/s of the real loop, an MLP) with the train split
   streamed from Parquet against the same split resident on device (target >= 0.9);
3. peak resident memory of a process that prepares and streams one epoch of a file far
   larger than the buffer it is allowed (dataset.stream=true, 64 MiB buffer), for the file
   and for one with 3x the rows: bounded means the peak grows much less than the data.
   Measured twice: as a user runs it, and with Polars' allocator returning freed memory at
   once (`_RJEM_MALLOC_CONF`), which separates memory in use from pages kept for reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


def make_file(path: str, rows: int, cols: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, cols)).astype(np.float32)
    df = pl.DataFrame(x, schema=[f"f{i}" for i in range(cols)], orient="row")
    df.with_columns(label=pl.Series((x[:, 0] > 0).astype(np.int32))).write_parquet(path, row_group_size=65536)


def interleaved(items: dict, repeats: int, timed=None) -> dict[str, float]:
    """Fastest time of each item, run in turns (A B A B ...) so that a slow spell of this
    shared machine, or memory a previous call left behind, falls on both alike.
    `timed(item)`: the seconds one run of an item takes (default: the item is a function,
    called and timed here)."""
    times = {k: [] for k in items}
    for _ in range(repeats):
        for k, item in items.items():
            times[k].append((timed or _wall_time)(item))
    return {k: min(v) for k, v in times.items()}


def _wall_time(fn) -> float:
    t = time.perf_counter()
    fn()  # the result is dropped before the next call
    return time.perf_counter() - t


def load_raw(path: str, cache: str):
    return pl.read_parquet(path).to_numpy()


def load_dlexp(path: str, cache: str):
    from dlexp.data.table import table

    return table(path=path, label="label", split="random", stream=False, cache_dir=cache)


LOADS = {"raw": load_raw, "dlexp": load_dlexp}  # the two sides of the load benchmark


def bench_load(path: str, cache: str, repeats: int) -> dict:
    """Both loads in turns in this process (fastest of each), then each in a fresh process of
    its own, as a run loads its data: once, into memory its process has not touched yet."""
    best = interleaved({k: (lambda fn=fn: fn(path, cache)) for k, fn in LOADS.items()}, repeats)
    peaks = {}
    fresh = interleaved({k: k for k in LOADS}, repeats, timed=lambda k: _load_in_fresh_process(k, path, cache, peaks))
    return {**_ratio(best), "fresh_process": {**_ratio(fresh), "peak_rss_mb": peaks}}


def _ratio(best: dict[str, float]) -> dict:
    return {
        "raw_s": round(best["raw"], 3),
        "dlexp_s": round(best["dlexp"], 3),
        "speed_ratio": round(best["raw"] / best["dlexp"], 3),
    }


# The peak RSS of the process that evaluates it, in MB, for the programs run in fresh
# processes below (VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent that forked it).
PEAK_RSS_MB = 'next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024'


def _load_in_fresh_process(name: str, path: str, cache: str, peaks: dict) -> float:
    """Seconds LOADS[name] takes in a new Python process (its imports done before the clock
    starts); the process's peak RSS goes into peaks[name] (the lowest seen)."""
    code = f"""
import sys, time
sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "scripts")!r}]
import dlexp.data.table
from bench_data import LOADS
t = time.perf_counter()
out = LOADS[{name!r}]({path!r}, {cache!r})
seconds = time.perf_counter() - t
peak = {PEAK_RSS_MB}
print(seconds, peak)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, peak = map(float, proc.stdout.split()[-2:])
    peaks[name] = round(min(peak, peaks.get(name, peak)), 1)
    return seconds


def bench_train(path: str, cache: str, steps: int) -> dict:
    from hydra import compose, initialize_config_dir

    from dlexp.config import register_configs
    from dlexp.train import run

    register_configs()
    out = {}
    for mode in ("false", "true"):
        with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    "dataset=parquet",
                    f"dataset.path={path}",
                    "dataset.label=label",
                    f"+dataset.stream={mode}",
                    "dataset.split=random",
                    "model=mlp",
                    "model.hidden=[256,256]",
                    f"trainer.steps={steps}",
                    "trainer.batch_size=256",
                    "trainer.steps_per_call=8",
                    "trainer.log_every=1000000",
                    "trainer.eval_every=1000000",
                    "trainer.progress=false",
                    "logger=none",
                    "trainer.checkpoint.enabled=false",
                    f"paths.cache={cache}",
                ],
            )
        with tempfile.TemporaryDirectory(prefix=f"bench_stream_{mode}_") as run_dir:
            _, summary = run(cfg, run_dir)
        out["streamed" if mode == "true" else "resident"] = summary["samples_per_s"]
    out["ratio"] = round(out["streamed"] / out["resident"], 3)
    return out


# Polars' allocator (jemalloc) keeps freed pages for seconds before it returns them, so a
# peak counts memory Polars no longer uses; with these settings it returns them at once.
RETURN_AT_ONCE = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}


def bench_memory(path: str, cache: str, buffer_mb: float, env: dict | None = None) -> dict:
    """Peak RSS of a fresh process streaming one epoch, against the file's float32 size."""
    code = f"""
import sys, jax, numpy as np
sys.path.insert(0, {ROOT!r})
from dlexp.data.table import table
from dlexp.data.loader import StreamingLoader
d = table(path={path!r}, label="label", split="random", val_fraction=0.001, test_fraction=0.001, stream=True,
          cache_dir={cache!r})
def peak_mb():
    return {PEAK_RSS_MB}
base = peak_mb()
ld = StreamingLoader(d.stream, d.y["train"], 256, 0, jax.devices()[0], steps_per_call=8, buffer_mb={buffer_mb})
for s in range(0, ld.steps_per_epoch, 8):
    xs, ys = ld.call_args(0, s, min(8, ld.steps_per_epoch - s))
    xs.block_until_ready()
ld.close()
print(base, peak_mb())
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    )
    after_prep, peak = map(float, proc.stdout.split())
    rows, cols = (
        pl.scan_parquet(path).select(pl.len()).collect().item(),
        len(pl.scan_parquet(path).collect_schema()) - 1,
    )
    return {
        "rows": rows,
        "data_mb": round(rows * cols * 4 / 2**20, 1),
        "buffer_mb": buffer_mb,
        "peak_rss_after_prepare_mb": round(after_prep, 1),
        "peak_rss_streaming_mb": round(peak, 1),
    }


def bench_memory_growth(path: str, rows: int, cols: int, cache: str, buffer_mb: float) -> dict:
    """`bench_memory` for the file and for one with 3x its rows: how the peak grows with the
    data; with Polars' default allocator settings and with freed memory returned at once."""
    big = path.replace(".parquet", "_x3.parquet")
    make_file(big, 3 * rows, cols, seed=1)
    out = {}
    for name, env in (("default", None), ("freed_returned_at_once", RETURN_AT_ONCE)):
        small, large = bench_memory(path, cache, buffer_mb, env), bench_memory(big, cache, buffer_mb, env)
        growth = (large["peak_rss_streaming_mb"] - small["peak_rss_streaming_mb"]) / (
            large["data_mb"] - small["data_mb"]
        )
        out[name] = {"1x": small, "3x": large, "peak_growth_per_data_mb": round(growth, 3)}
    os.remove(big)
    return out


def run_benchmarks(args, work: str) -> dict:
    path, cache = os.path.join(work, "bench.parquet"), os.path.join(work, "cache")
    make_file(path, args.rows, args.cols)
    print(f"file: {args.rows:,} x {args.cols} float32 + label, {os.path.getsize(path) / 2**20:.0f} MiB Parquet")
    results = {}
    if args.only in (None, "load"):
        results["load"] = bench_load(path, cache, args.repeats)
        print(f"load+prepare vs read_parquet().to_numpy(): {results['load']}  (target speed_ratio >= 0.8)", flush=True)
    if args.only in (None, "train"):
        results["train"] = bench_train(path, cache, args.steps)
        print(f"train samples/s, streamed vs resident: {results['train']}  (target ratio >= 0.9)", flush=True)
    if args.only in (None, "memory"):
        results["memory"] = bench_memory_growth(path, args.rows, args.cols, cache, args.buffer_mb)
        print(f"streaming memory: {results['memory']}", flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cols", type=int, default=100)
    p.add_argument("--steps", type=int, default=400, help="train steps per throughput run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--buffer-mb", type=float, default=64.0)
    p.add_argument("--quick", action="store_true", help="1 repeat, 100 steps")
    p.add_argument("--only", choices=("load", "train", "memory"), help="run one of the three benchmarks")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.steps = 1, 100
    with tempfile.TemporaryDirectory(prefix="bench_data_") as work:  # the 350 MB file goes with it
        results = run_benchmarks(args, work)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
