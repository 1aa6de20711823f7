"""dlexp's training loop against the peer programs in ../shared/peers, in one invocation.

Every runner trains the same model (the peers' cnn or mlp) on the same synthetic
data (the peers' `_common.prepared`) with Adam(1e-3), in a fresh process, one after
another; the table gives samples/s and each peer's speed relative to dlexp. dlexp
runs through `dlexp.train.run` with its default settings (trainer.parallel=auto,
logging every 20 steps), plus a few variants.

  uv run python scripts/bench.py                               # cnn and mlp, peers included
  uv run python scripts/bench.py --models mlp --skip-peers     # dlexp variants only
  uv run python scripts/bench.py --startup                     # time to first step, cold and warm
  uv run python scripts/bench.py --baseline main --skip-peers  # against another commit's loop, in turns

The peers need their own environment (see ../shared/peers/README.md), e.g.
  python3 -m venv .peers-venv
  .peers-venv/bin/pip install torch==2.13.0 keras jax==0.10.2 flax==0.12.8 optax==0.2.8 numpy
and `--peers-python .peers-venv/bin/python` (the default when that venv exists).
The machine is shared: `other` is the CPU other processes used meanwhile (> 0.1 core
means the row is suspect).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_DIR = os.path.join(os.path.dirname(ROOT), "shared", "peers")

# The peers' models in dlexp's config language (identical layers; see peers/_common.py).
MODEL_OVERRIDES = {
    "cnn": [
        "model=cnn",
        "model.channels=[32,64]",
        "model.kernel=3",
        "model.pool=avg",
        "model.dense=[256]",
        "model.dropout=0.0",
        "trainer.batch_size=128",
    ],
    "mlp": ["model=mlp", "model.hidden=[512,512]", "model.dropout=0.0", "trainer.batch_size=256"],
}
DLEXP_VARIANTS = {  # name -> extra overrides; "default" is what a user gets
    "cnn": {
        "default": [],
        "single": ["trainer.parallel=single"],
        "fused10": ["trainer.steps_per_call=10"],
        "bf16": ["trainer.precision=bfloat16"],
        "ynn_dots": ["trainer.cpu_kernels=ynn_dots"],
    },
    "mlp": {
        "default": [],
        "k1": ["trainer.steps_per_call=1"],
        "mesh": ["trainer.parallel=mesh"],
        "bf16": ["trainer.precision=bfloat16"],
        "ynn_dots": ["trainer.cpu_kernels=ynn_dots"],
    },
}
PEERS = {
    "cnn": {
        "jax_minimal": ["jax_minimal.py"],
        "jax_sharded": ["jax_sharded.py"],
        "jax_scan_unroll": ["jax_scan.py", "--k", "10", "--unroll", "10"],
        "torch_eager": ["torch_eager.py"],
        "torch_compile": ["torch_eager.py", "--compile"],
        "keras_jax": ["keras_jax.py"],
    },
    "mlp": {
        "jax_minimal": ["jax_minimal.py"],
        "jax_scan": ["jax_scan.py", "--k", "10"],
        "jax_sharded": ["jax_sharded.py"],
        "torch_eager": ["torch_eager.py"],
        "torch_compile": ["torch_eager.py", "--compile"],
        "keras_jax": ["keras_jax.py"],
    },
}
# About 10 s of steady training on this project's fastest 2-core machine so far (cnn
# ~6,500, mlp ~110,000 samples/s), so that dlexp trains at least as long as a peer's timed
# windows last and its `own` column (a median over half-second intervals of the whole
# child) is read from training, not from start-up and compiling.
STEPS_PER_10S = {"cnn": 500, "mlp": 4300}


# ------------------------------------------------------------------------------ child


def peer_dataset(model: str):
    """The peers' data as a dlexp Dataset (train: all 60k rows; tiny val/test)."""
    sys.path.insert(0, PEERS_DIR)
    from _common import BATCH, prepared  # pyright: ignore[reportMissingImports]  (the peers' own generator)

    x, y, _ = prepared(model, BATCH[model])
    if model == "cnn":
        x = x.reshape(-1, 28, 28, 1)
    return array_dataset(x, y, held=512, source="peers/_common.prepared")


def array_dataset(x, y, *, held: int, source: str):
    """A 10-class Dataset of in-memory arrays for speed runs: every row trains, the first
    `held` rows are also val and test."""
    from dlexp.data import Dataset

    return Dataset(
        x={"train": x, "val": x[:held], "test": x[:held]},
        y={"train": y, "val": y[:held], "test": y[:held]},
        task="classification",
        classes=list(range(10)),
        prep={"source": {"path": source, "rows": len(y)}},
    )


def child(model: str, variant: str, seconds: float) -> dict:
    """One dlexp measurement in this (fresh) process."""
    sys.path.insert(0, PEERS_DIR)
    from _common import cpu_snapshot, cpu_usage  # pyright: ignore[reportMissingImports]
    from hydra import compose, initialize_config_dir

    from dlexp.config import register_configs
    from dlexp.train import run

    register_configs()
    steps = max(50, int(STEPS_PER_10S[model] * seconds / 10))
    overrides = [
        *MODEL_OVERRIDES[model],
        *DLEXP_VARIANTS[model][variant],
        "optimizer=adam",
        "optimizer.lr=1e-3",
        "+optimizer.eps=1e-8",
        "schedule=constant",
        f"trainer.steps={steps}",
        f"trainer.eval_every={steps}",
        "trainer.progress=false",
        "trainer.checkpoint.enabled=false",
        "logger=none",
        "logger.console=false",
    ]
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    data = peer_dataset(model)
    with tempfile.TemporaryDirectory() as tmp:
        sampler = CpuSampler(cpu_snapshot)
        _, summary = run(cfg, os.path.join(tmp, "run"), data=data)
        sampler.stop()
    # Steady state, like the peers' timed windows: the median log window (dlexp/trainer.py),
    # and the median core use over half-second intervals (compiling and evaluating are few).
    steady = summary.get("steady_samples_per_s") or summary["samples_per_s"]
    whole = {f"{k}_whole_run": v for k, v in cpu_usage(sampler.snapshots[0], sampler.snapshots[-1]).items()}
    return {
        "runner": f"dlexp_{variant}",
        "model": model,
        "samples_per_s": steady,
        "samples_per_s_whole_run": summary["samples_per_s"],
        "first_step_s": summary["time_to_first_step_s"],
        "devices": summary["devices"],
        "final_loss": round(summary["final"]["train"]["loss"], 4),
        **sampler.median(cpu_usage),
        **whole,
    }


class CpuSampler:
    """CPU snapshots every `every` seconds from a background thread, so that dlexp's core use
    can be read over its steady training, as the peers report theirs over their timed windows
    (a snapshot of the whole run counts the single-threaded compiles too)."""

    def __init__(self, snapshot, every: float = 0.5):
        self.snapshot, self.snapshots, self._done = snapshot, [snapshot()], threading.Event()

        def sample():
            while not self._done.wait(every):
                self.snapshots.append(snapshot())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops sampling; the last snapshot is taken now, so first to last spans the whole run."""
        self._done.set()
        self._thread.join()
        self.snapshots.append(self.snapshot())

    def median(self, usage) -> dict:
        """The median over the intervals of each number `usage(a, b)` gives."""
        parts = [usage(a, b) for a, b in zip(self.snapshots, self.snapshots[1:])]
        return {k: round(statistics.median(p[k] for p in parts), 2) for k in parts[0]} if parts else {}


# ------------------------------------------------------------------------------ parent


def run_json(cmd: list[str], env: dict | None = None, cwd: str | None = None, timeout: int = 600) -> dict:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": (p.stderr or p.stdout)[-400:]}
    return json.loads(lines[-1])


def measure_dlexp(model: str, variant: str, seconds: float, tree: str = ROOT, label: str = "") -> dict:
    """One dlexp child; `tree`: another checkout (a git worktree of --baseline), run with its own code."""
    env = {**os.environ, "PYTHONPATH": tree} if tree != ROOT else None
    out = run_json(
        [
            sys.executable,
            os.path.join(tree, "scripts", "bench.py"),
            "--child",
            model,
            variant,
            "--seconds",
            str(seconds),
        ],
        env=env,
        cwd=tree,
    )
    out["runner"] = label or f"dlexp_{variant}"
    out.setdefault("model", model)
    return out


def baseline_tree(rev: str) -> str:
    """A git worktree of `rev` in a temporary dir (removed at exit)."""
    import atexit

    path = tempfile.mkdtemp(prefix=".dlexp-baseline-", dir=os.path.dirname(ROOT))  # beside it: ../shared/peers
    subprocess.run(["git", "worktree", "add", "--detach", path, rev], cwd=ROOT, check=True, capture_output=True)
    atexit.register(
        lambda: subprocess.run(["git", "worktree", "remove", "--force", path], cwd=ROOT, capture_output=True)
    )
    return path


def measure_peer(model: str, name: str, args: list[str], python: str, seconds: float) -> dict:
    env = {**os.environ, "PEER_SECONDS": str(seconds)}
    out = run_json([python, os.path.join(PEERS_DIR, args[0]), "--model", model, *args[1:]], env=env)
    out["runner"] = name
    out["model"] = model
    return out


def startup(seconds_unused: float) -> list[dict]:
    """Wall time of `python -m dlexp.train` (cold and warm compile cache) next to `import jax`."""
    rows = []
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], check=True, capture_output=True)
    rows.append({"runner": "python -c 'import jax; jax.devices()'", "wall_s": round(time.perf_counter() - t0, 2)})
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DLEXP_CACHE": os.path.join(tmp, "cache")}
        for label in ("cold compile cache", "warm compile cache"):
            run_dir = os.path.join(tmp, label.split()[0])
            t0 = time.perf_counter()
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dlexp.train",
                    "model=cnn",
                    "trainer.epochs=1",
                    "trainer.progress=false",
                    f"hydra.run.dir={run_dir}",
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
            )
            wall = time.perf_counter() - t0
            if p.returncode:
                rows.append({"runner": label, "error": p.stderr[-400:]})
                continue
            with open(os.path.join(run_dir, "summary.json")) as f:
                s = json.load(f)
            rows.append(
                {
                    "runner": f"python -m dlexp.train model=cnn trainer.epochs=1 ({label})",
                    "wall_s": round(wall, 2),
                    "first_step_s": s["time_to_first_step_s"],
                }
            )
    return rows


def paired_ratios(all_rows: list[dict], model: str, runner: str) -> list[float]:
    """dlexp_default / runner within each round: the two ran minutes apart, so a slow
    spell of the machine falls on both; the spread of these is the honest error bar."""
    rate = {
        (r["round"], r["runner"]): r["samples_per_s"] for r in all_rows if r["model"] == model and "samples_per_s" in r
    }
    rounds = sorted({k[0] for k in rate})
    return [
        rate[(i, "dlexp_default")] / rate[(i, runner)]
        for i in rounds
        if (i, "dlexp_default") in rate and (i, runner) in rate
    ]


def table(rows: list[dict], all_rows: list[dict] | None = None) -> str:
    out = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        ref = next((r for r in mine if r["runner"] == "dlexp_default" and "samples_per_s" in r), None)
        out.append(f"\n{model}: samples/s (median of windows for peers; steady state for dlexp)")
        out.append(
            f"{'runner':22s} {'samples/s':>10s} {'dlexp/x':>8s} {'first_s':>8s} {'dev':>4s} {'own':>5s} {'other':>6s}"
            "  paired dlexp/x per round: median (min..max)"
        )
        for r in mine:
            if "samples_per_s" not in r:
                out.append(f"{r['runner']:22s} error: {r.get('error', '?')[:80]}")
                continue
            ratio = ref["samples_per_s"] / r["samples_per_s"] if ref else float("nan")
            first = r.get("first_step_s", float("nan"))
            paired = paired_ratios(all_rows or [], model, r["runner"]) if r["runner"] != "dlexp_default" else []
            spread = (
                f"  {statistics.median(paired):.2f} ({min(paired):.2f}..{max(paired):.2f}, {len(paired)} rounds)"
                if len(paired) > 1
                else ""
            )
            out.append(
                f"{r['runner']:22s} {r['samples_per_s']:10,.0f} {ratio:8.2f} {first:8.2f} "
                f"{r.get('devices', 1):>4} {r.get('own_cores', float('nan')):5.2f} "
                f"{r.get('other_cores', float('nan')):6.2f}" + spread
            )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cnn", "mlp"], choices=["cnn", "mlp"])
    p.add_argument("--seconds", type=float, default=10.0, help="steady-state seconds per runner")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every runner this many times, in turns; keep the best (and print the paired ratios)",
    )
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--peers", nargs="*", help="only these peers")
    p.add_argument("--variants", nargs="*", help="only these dlexp variants")
    default_py = os.path.join(ROOT, ".peers-venv", "bin", "python")
    p.add_argument("--peers-python", default=default_py if os.path.exists(default_py) else "python3")
    p.add_argument("--startup", action="store_true", help="also time the CLI's start-up, cold and warm")
    p.add_argument("--baseline", metavar="REV", help="also run dlexp_default of this commit (a git worktree), in turns")
    p.add_argument("--out", help="append the JSON rows to this file")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        model, variant = a.child
        print(json.dumps(child(model, variant, a.seconds)), flush=True)
        return

    runners = []  # (model, name, measure) in the order of one round
    base = baseline_tree(a.baseline) if a.baseline else None
    for model in a.models:
        for variant in DLEXP_VARIANTS[model]:
            if not a.variants or variant in a.variants:
                runners.append((model, f"dlexp_{variant}", lambda m=model, v=variant: measure_dlexp(m, v, a.seconds)))
        if base is not None:
            runners.append(
                (
                    model,
                    f"base_{a.baseline}",
                    lambda m=model, t=base: measure_dlexp(m, "default", a.seconds, tree=t, label=f"base_{a.baseline}"),
                )
            )
        if not a.skip_peers:
            for name, args in PEERS[model].items():
                if not a.peers or name in a.peers:
                    runners.append(
                        (
                            model,
                            name,
                            lambda m=model, n=name, ar=args: measure_peer(m, n, ar, a.peers_python, a.seconds),
                        )
                    )
    # Rounds: every runner once per round, in turn, so that a slow spell of this shared
    # machine falls on all of them alike; each runner keeps its fastest round.
    best: dict = {}
    every: list[dict] = []
    for r in range(a.rounds):
        for model, name, measure in runners:
            row = {**measure(), "round": r}
            every.append(row)
            print(json.dumps(row), flush=True)
            old = best.get((model, name))
            if old is None or row.get("samples_per_s", -1) > old.get("samples_per_s", -1):
                best[(model, name)] = row
    rows = list(best.values())
    print(table(rows, every))
    if a.startup:
        for r in startup(a.seconds):
            print(json.dumps(r), flush=True)
            rows.append({**r, "model": "startup"})
    if a.out:
        with open(a.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
