"""Speed features keep the numbers: fused steps, the compile cache, the profiler trace."""

import glob
import json
import os

import pytest

from conftest import read_json
from dlexp.train import run

TINY = ["trainer.steps=12", "trainer.log_every=4", "trainer.eval_every=6", "trainer.progress=false",
        "trainer.batch_size=32", "logger=jsonl", "trainer.checkpoint.enabled=false", "dataset=wine"]


def train_losses(run_dir):
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_fused_steps_give_the_same_losses_at_the_same_steps(compose, tmp_path, model):
    extra = ["dataset=synthetic", "dataset.rows=400"] if model == "cnn" else []
    runs = {}
    for k in (1, 5):  # 5 divides neither the log nor the eval cadence: calls must still stop at them
        cfg = compose([f"model={model}", *TINY, *extra, f"trainer.steps_per_call={k}", "trainer.parallel=single"])
        _, summary = run(cfg, str(tmp_path / f"k{k}"))
        runs[k] = (train_losses(tmp_path / f"k{k}"), summary)
    (l1, s1), (l5, s5) = runs[1], runs[5]
    assert [s for s, _ in l1] == [s for s, _ in l5] == [4, 8, 12]
    assert [v for _, v in l5] == pytest.approx([v for _, v in l1], rel=1e-5)
    assert s5["test"]["loss"] == pytest.approx(s1["test"]["loss"], rel=1e-5)
    assert s5["best"]["step"] == s1["best"]["step"]


def test_compile_cache_is_written(compose, tmp_path, cache_dir):
    cfg = compose(["model=mlp", *TINY])
    run(cfg, str(tmp_path / "a"))
    assert glob.glob(os.path.join(cache_dir, "jax", "*")), "no compiled programs in the persistent cache"


def test_profile_trace_for_tensorboard(cli, tmp_path):
    cli("debug=profile", "model=mlp", "dataset=wine", "trainer.steps=12", "logger.profile_steps=4",
        f"hydra.run.dir={tmp_path / 'p'}", check=True)
    traces = glob.glob(str(tmp_path / "p" / "tb" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert traces and os.path.getsize(traces[0]) > 0
    assert read_json(tmp_path / "p" / "summary.json")["profile"]["steps"] == [1, 5]
