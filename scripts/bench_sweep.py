"""A 16-job grid (lr 4 x weight decay 2 x seed 2) three ways, side by side in one invocation:

  packed      python -m dlexp.train -m ...                          (the default: one program per group)
  sequential  ... sweep.pack=false                                  (Hydra's basic way: job after job)
  joblib      ... sweep.pack=false launcher=joblib (2 workers)      (two jobs at once, each on half the cores)

Each row: wall time, jobs per minute, peak memory of the whole process tree (sampled), and the
speed relative to the sequential multirun. The rounds take the variants in turns.

  uv run python scripts/bench_sweep.py                    # mlp and cnn on digits
  uv run python scripts/bench_sweep.py --models mlp --epochs 5 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = [
    "optimizer.lr=1e-3,2e-3,5e-3,1e-2",
    "optimizer.weight_decay=1e-5,1e-4",
    "seed=0,1",
    "data_seed=0",  # both seeds on one split, as a packed group shares it
]
VARIANTS = {
    "packed": [],
    "sequential": ["sweep.pack=false"],
    "joblib": ["sweep.pack=false", "launcher=joblib", "hydra.launcher.n_jobs=2"],
}


def peak_rss(pid: int, stop: threading.Event, out: list[int]) -> None:
    """The largest sum of RSS over a process and its descendants, sampled every 0.1 s."""
    peak = 0
    try:
        root = psutil.Process(pid)
        while not stop.is_set():
            procs = [root, *root.children(recursive=True)]
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
            time.sleep(0.1)
    except psutil.Error:
        pass
    out.append(peak)


def run(model: str, variant: str, epochs: int, workdir: str) -> dict:
    sweep_dir = os.path.join(workdir, f"{model}_{variant}_{time.monotonic_ns()}")
    args = [
        sys.executable,
        "-m",
        "dlexp.train",
        "-m",
        f"model={model}",
        "dataset=digits",
        f"trainer.epochs={epochs}",
        "trainer.progress=false",
        "logger.console=false",
        *GRID,
        *VARIANTS[variant],
        f"hydra.sweep.dir={sweep_dir}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, peaks = threading.Event(), []
    watcher = threading.Thread(target=peak_rss, args=(proc.pid, stop, peaks))
    watcher.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{model} {variant} failed:\n{err[-3000:]}")
    return {"wall_s": wall, "jobs_per_min": 16 * 60 / wall, "peak_mb": peaks[0] / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for model in a.models:
            results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            for _ in range(a.rounds):
                for variant in VARIANTS:
                    results[variant].append(run(model, variant, a.epochs, workdir))
            base = statistics.median(r["wall_s"] for r in results["sequential"])
            print(f"\n{model} on digits, 16 jobs, {a.epochs} epochs, {a.rounds} round(s); CPU: {cpu_name()}")
            print(f"{'variant':<11} {'wall s':>8} {'jobs/min':>9} {'peak MB':>8} {'x sequential':>13}")
            for variant, rows in results.items():
                wall = statistics.median(r["wall_s"] for r in rows)
                peak = max(r["peak_mb"] for r in rows)
                print(f"{variant:<11} {wall:>8.1f} {16 * 60 / wall:>9.1f} {peak:>8.0f} {base / wall:>13.2f}")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
