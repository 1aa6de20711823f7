"""Two CPU choices measured in one process, in turns: the max-pool implementation and
trainer.cpu_kernels.

    uv run python scripts/bench_cpu.py pool                   # nnx.max_pool vs dlexp's (default cnn)
    uv run python scripts/bench_cpu.py kernels                # cpu_kernels=xla vs ynn_dots
    uv run python scripts/bench_cpu.py kernels --model resnet --shapes 32x32x3:128
    uv run python scripts/bench_cpu.py kernels --extra model.pool=avg model.dense=[256] model.dropout=0.0

Each case trains dlexp's real loop (`dlexp.train.run`) on random images of the given
shape (4,096 rows; `digits` is the built-in data set of the quick start) with each
alternative, `--rounds` times in turns, and prints the best steady samples/s of each
and their ratio. The machine is shared: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402


def images(shape: str, rows: int = 4096):
    """A classification Dataset of random images, H x W x C (rows, not learnable: speed only)."""
    from bench import array_dataset  # scripts/bench.py, beside this file

    h, w, c = map(int, shape.split("x"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, h, w, c)).astype(np.float32)
    return array_dataset(x, rng.integers(0, 10, rows).astype(np.int32), held=256, source="random")


def steady_rate(overrides: list[str], data) -> float:
    from hydra import compose, initialize_config_dir

    from dlexp.train import run

    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                "trainer.progress=false",
                "trainer.checkpoint.enabled=false",
                "logger=none",
                "logger.console=false",
            ],
        )
    with tempfile.TemporaryDirectory() as tmp:
        _, summary = run(cfg, os.path.join(tmp, "run"), data=data)
    return summary["steady_samples_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("compare", choices=["pool", "kernels"])
    p.add_argument("--model", default="cnn")
    p.add_argument(
        "--shapes",
        nargs="+",
        default=["digits:64", "16x16x1:128", "28x28x1:128", "32x32x3:128"],
        help="H x W x C : batch size, or digits : batch size",
    )
    p.add_argument("--extra", nargs="*", default=[], help="more config overrides for every run")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()

    from flax import nnx

    import dlexp.models.cnn as cnn
    from dlexp.config import register_configs
    from dlexp.models.layers import max_pool

    register_configs()
    if a.compare == "pool":
        names = ("nnx.max_pool", "dlexp max_pool")
        setups = {
            names[0]: lambda: cnn.POOLS.__setitem__("max", nnx.max_pool),
            names[1]: lambda: cnn.POOLS.__setitem__("max", max_pool),
        }
        settings = {n: [] for n in names}
    else:
        names = ("xla", "ynn_dots")
        setups = {n: (lambda: None) for n in names}
        settings = {n: [f"trainer.cpu_kernels={n}"] for n in names}
    for case in a.shapes:
        shape, batch = case.split(":")
        data = None if shape == "digits" else images(shape)
        length = (
            [f"trainer.steps={a.steps}", f"trainer.eval_every={a.steps}", "trainer.log_every=10"]
            if data is not None
            else ["trainer.epochs=30"]
        )
        best = {n: 0.0 for n in names}
        for _ in range(a.rounds):
            for n in names:
                setups[n]()
                overrides = [f"model={a.model}", f"trainer.batch_size={batch}", *length, *settings[n], *a.extra]
                best[n] = max(best[n], steady_rate(overrides, data))
        rates = "  ".join(f"{n} {best[n]:,.0f}" for n in names)
        print(f"{a.model} {shape} batch {batch}: {rates}  ratio {best[names[1]] / best[names[0]]:.2f}", flush=True)


if __name__ == "__main__":
    main()
