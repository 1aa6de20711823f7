"""Reads and memory of several processes, each reading its own data shard, printed as ratios
measured in one run.

    uv run python scripts/bench_multihost.py                  # 4,000,000 x 50 in 8 Parquet files
    uv run python scripts/bench_multihost.py --rows 400000    # a smaller check
    uv run python scripts/bench_multihost.py --only streamed  # one of resident / streamed

For a multi-file Parquet set, the same short training run (an MLP, 20 steps) as one process
holding everything and as two processes joined by jax.distributed on this machine
(`trainer.data_shards` defaults to 2: each reads its own files), resident and streamed. Each
process's rows read and peak memory come from the run's summary.json (`data.processes`):
`data_peak_mb` is the peak resident memory while loading above what the process held before
(the interpreter and JAX), measured with Polars' allocator as it is and with freed memory
returned at once (which separates memory in use from pages kept for reuse). Targets: each of 2
processes reads half the rows, and its data peak is at most about 0.6x that of the single
process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile

import numpy as np
import polars as pl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_files(folder: str, rows: int, cols: int, files: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(files):
        x = rng.normal(size=(rows // files, cols)).astype(np.float32)
        frame = pl.DataFrame(x, schema=[f"f{j}" for j in range(cols)], orient="row")
        label = pl.Series((x[:, 0] + x[:, 1] > 0).astype(np.int32))
        frame.with_columns(label=label).write_parquet(os.path.join(folder, f"part{i:02d}.parquet"))


def train_args(folder: str, run_dir: str, cache: str, stream: bool, parallel: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dlexp.train",
        "dataset=parquet",
        f"dataset.path={folder}",
        "dataset.label=label",
        "dataset.split=random",
        f"+dataset.stream={str(stream).lower()}",
        "model=mlp",
        "trainer.steps=20",
        "trainer.batch_size=256",
        "trainer.eval_every=20",
        "trainer.progress=false",
        f"trainer.parallel={parallel}",
        "trainer.checkpoint.enabled=false",
        "logger=none",
        f"paths.cache={cache}",  # a cache of its own: every run prepares its data afresh
        f"hydra.run.dir={run_dir}",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Polars' allocator (jemalloc) keeps freed pages for seconds before it returns them, so a
# peak counts memory Polars no longer uses; with these settings it returns them at once.
RETURN_AT_ONCE = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}


def run(folder: str, work: str, processes: int, stream: bool, allocator: dict) -> dict:
    """One run with `processes` processes; returns its summary's `data` entry."""
    name = f"{processes}proc_{'streamed' if stream else 'resident'}_{len(allocator)}"
    run_dir, cache = os.path.join(work, name), os.path.join(work, name + "_cache")
    env = {**os.environ, "PYTHONPATH": ROOT, **allocator}
    env.pop("XLA_FLAGS", None)
    args = train_args(folder, run_dir, cache, stream, "single" if processes == 1 else "mesh")
    if processes == 1:
        procs = [subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)]
    else:
        port = free_port()
        procs = [
            subprocess.Popen(
                [
                    *args,
                    f"trainer.distributed.coordinator=127.0.0.1:{port}",
                    f"trainer.distributed.num_processes={processes}",
                    f"trainer.distributed.process_id={i}",
                ],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{name} failed:\n{err[-3000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)["data"]


def compare(one: dict, two: dict) -> dict:
    single = one["processes"][0]
    return {
        "one_process": single,
        "two_processes": two["processes"],
        "rows_read_ratio": [round(p["rows_read"] / single["rows_read"], 3) for p in two["processes"]],
        "data_peak_ratio": [round(p["data_peak_mb"] / single["data_peak_mb"], 3) for p in two["processes"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rows", type=int, default=4_000_000)
    p.add_argument("--cols", type=int, default=50)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--only", choices=("resident", "streamed"), help="measure one of the two")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_multihost_") as work:
        folder = os.path.join(work, "data")
        os.makedirs(folder)
        make_files(folder, args.rows, args.cols, args.files)
        mb = args.rows * args.cols * 4 / 2**20
        print(f"data: {args.rows:,} x {args.cols} float32 ({mb:.0f} MiB) in {args.files} Parquet files", flush=True)
        for stream in (False, True):
            kind = "streamed" if stream else "resident"
            if args.only not in (None, kind):
                continue
            for name, allocator in (("default", {}), ("freed_returned_at_once", RETURN_AT_ONCE)):
                one, two = run(folder, work, 1, stream, allocator), run(folder, work, 2, stream, allocator)
                results[f"{kind}/{name}"] = compare(one, two)
                print(f"{kind}/{name}: {json.dumps(results[f'{kind}/{name}'])}", flush=True)
        print("targets: rows_read_ratio 0.5, data_peak_ratio <= about 0.6", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
