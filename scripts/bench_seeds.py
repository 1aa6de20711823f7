"""Vectorized seeds against the same seeds run one by one, in one invocation.

  uv run python scripts/bench_seeds.py                    # 8 seeds of the mlp on digits (defaults: 30 epochs)
  uv run python scripts/bench_seeds.py --seeds 4 --extra trainer.epochs=5   # a quick check

Times, as a user would see them (wall time of whole commands, start-up included):
  vectorized  one `python -m dlexp.train ... trainer.seeds=N`
  sequential  N commands `python -m dlexp.train ... seed=i data_seed=0`, one after another
  multirun    one `python -m dlexp.train -m ... seed=0,...,N-1 data_seed=0` (one process, N jobs)
The sequential runs use data_seed=0 so that they train exactly what the copies train;
the script checks that their test accuracies agree. Prints one JSON line at the end.
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


def train(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dlexp.train", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"failed: python -m dlexp.train {' '.join(args)}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for every command")
    p.add_argument("--no-multirun", action="store_true", help="skip the one-process multirun timing")
    a = p.parse_args()
    base = ["model=mlp", "dataset=digits", "trainer.progress=false", "trainer.checkpoint.enabled=false", *a.extra]
    env = {**os.environ, "PYTHONPATH": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        train([*base, "trainer.epochs=1", f"hydra.run.dir={tmp}/warm"], env)  # data cache written once, not timed

        vec_dir = f"{tmp}/vectorized"
        t_vec = train([*base, f"trainer.seeds={a.seeds}", f"hydra.run.dir={vec_dir}"], env)
        print(f"vectorized: {a.seeds} seeds in one program: {t_vec:.1f} s", file=sys.stderr)

        t_seq, seq_acc = 0.0, []
        for s in range(a.seeds):
            d = f"{tmp}/seq_{s}"
            t_seq += train([*base, f"seed={s}", "data_seed=0", f"hydra.run.dir={d}"], env)
            with open(f"{d}/summary.json") as f:
                seq_acc.append(json.load(f)["test"]["accuracy"])
        print(f"sequential: {a.seeds} commands: {t_seq:.1f} s", file=sys.stderr)

        t_multi = None
        if not a.no_multirun:
            seeds = ",".join(str(s) for s in range(a.seeds))
            t_multi = train(["-m", *base, f"seed={seeds}", "data_seed=0", f"hydra.sweep.dir={tmp}/multi"], env)
            print(f"multirun:   {a.seeds} jobs in one process: {t_multi:.1f} s", file=sys.stderr)

        with open(f"{vec_dir}/summary.json") as f:
            vec = json.load(f)
    vec_acc = [c["test"]["accuracy"] for c in vec["copies"]]
    result = {
        "seeds": a.seeds,
        "overrides": base,
        "vectorized_s": round(t_vec, 2),
        "sequential_s": round(t_seq, 2),
        "multirun_s": round(t_multi, 2) if t_multi else None,
        "speedup_vs_sequential": round(t_seq / t_vec, 2),
        "speedup_vs_multirun": round(t_multi / t_vec, 2) if t_multi else None,
        "test_accuracy_mean": round(sum(vec_acc) / len(vec_acc), 4),
        "max_abs_accuracy_diff_vs_sequential": max(abs(x - y) for x, y in zip(vec_acc, seq_acc)),
    }
    print(
        f"{a.seeds} seeds vectorized {t_vec:.1f} s vs sequential {t_seq:.1f} s: "
        f"{result['speedup_vs_sequential']}x faster",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
