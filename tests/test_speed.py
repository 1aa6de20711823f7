"""Speed features keep the numbers: fused steps, the compile cache, the profiler trace."""

import glob
import json
import os

import pytest
from conftest import read_json

from dlexp.train import run

TINY = [
    "trainer.steps=12",
    "trainer.log_every=4",
    "trainer.eval_every=6",
    "trainer.progress=false",
    "trainer.batch_size=32",
    "logger=jsonl",
    "trainer.checkpoint.enabled=false",
    "dataset=wine",
]


def train_losses(run_dir):
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
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


def test_calls_stop_at_every_epoch_log_and_eval_boundary():
    from dlexp.loop.plan import Plan

    plan = Plan(batch_size=8, steps_per_epoch=7, total_steps=20, eval_every=6, log_every=4)
    step, epoch, ends = 0, 0, []
    while step < plan.total_steps:
        n = plan.call_length(step, epoch, most=3)
        assert n in (1, 3)  # two call lengths: two compiled programs at most
        step += n
        ends.append(step)
        epoch = plan.epoch_after(step, epoch)
    # boundaries: logs at 4 8 12 16 20, evals at 6 12 18, epochs at 7 14
    assert {4, 6, 7, 8, 12, 14, 16, 18, 20} <= set(ends) and ends[:2] == [3, 4] and 11 in ends
    assert plan.crossed(8, 7, 4) and not plan.crossed(7, 4, 4) and plan.crossed(20, 18, 6)


def test_compile_cache_is_written(compose, tmp_path, cache_dir):
    cfg = compose(["model=mlp", *TINY])
    run(cfg, str(tmp_path / "a"))
    assert glob.glob(os.path.join(cache_dir, "jax", "*")), "no compiled programs in the persistent cache"


def test_profile_trace_for_tensorboard(cli, tmp_path):
    cli(
        "debug=profile",
        "model=mlp",
        "dataset=wine",
        "trainer.steps=12",
        "logger.profile_steps=4",
        f"hydra.run.dir={tmp_path / 'p'}",
        check=True,
    )
    traces = glob.glob(str(tmp_path / "p" / "tb" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert traces and os.path.getsize(traces[0]) > 0
    assert read_json(tmp_path / "p" / "summary.json")["profile"]["steps"] == [1, 5]


def test_steps_per_call_auto_fuses_only_where_it_pays():
    from dlexp.errors import ConfigError
    from dlexp.loop.xla_cpu import FUSE_MIN_FLOPS, FUSED_STEPS, steps_per_call

    long = dict(platform="cpu", run_flops=FUSE_MIN_FLOPS)
    assert steps_per_call("auto", conv=False, devices=1, **long) == FUSED_STEPS  # a long mlp run
    assert steps_per_call("auto", conv=False, devices=1, platform="cpu", run_flops=FUSE_MIN_FLOPS / 2) == 1  # too short
    assert steps_per_call("auto", conv=True, devices=1, **long) == 1  # conv gradients in a scan: slower
    assert steps_per_call("auto", conv=False, devices=2, **long) == 1  # a mesh: one call in flight anyway
    assert steps_per_call("auto", conv=False, devices=1, platform="gpu", run_flops=1e18) == 1  # not measured there
    assert steps_per_call(3, conv=True, devices=2, **long) == 3  # an explicit value always wins
    for bad in (0, -2, "fast", 2.5, True):
        with pytest.raises(ConfigError, match="trainer.steps_per_call"):
            steps_per_call(bad, conv=False, devices=1, **long)


def test_a_short_run_is_not_fused_and_records_its_speed(compose, tmp_path):
    cfg = compose(["model=mlp", *TINY, "trainer.parallel=single"])
    _, summary = run(cfg, str(tmp_path / "r"))
    assert summary["steps_per_call"] == 1 and summary["steps"] == 12  # compiling a fused call would not pay back
    assert summary["steady_samples_per_s"] > 0


@pytest.mark.parametrize("k", [1, 2, 4])
def test_the_logged_gradient_norm_is_the_norm_at_the_log_step(compose, tmp_path, k):
    """Taken only by the last step of a call that ends at a log step (k=1: the log step's own
    program; k=2 and 4: a scan, then the measured step): equal to a run that logs every step."""

    def grad_norms(name, extra):
        cfg = compose(
            [
                "model=mlp",
                *TINY,
                "dataset=synthetic",
                "dataset.rows=2000",
                "trainer.parallel=single",
                "trainer.eval_every=12",
                *extra,
            ]
        )
        run(cfg, str(tmp_path / name))
        rows = [json.loads(line) for line in open(tmp_path / name / "metrics.jsonl")]
        return {r["step"]: r["optimizer/grad_norm"] for r in rows if "optimizer/grad_norm" in r}

    every_step = grad_norms("every", ["trainer.steps_per_call=1", "trainer.log_every=1"])
    logged = grad_norms(f"k{k}", [f"trainer.steps_per_call={k}", "trainer.log_every=4"])
    assert sorted(logged) == [4, 8, 12]
    assert [logged[s] for s in (4, 8, 12)] == pytest.approx([every_step[s] for s in (4, 8, 12)], rel=1e-5)
    assert every_step[4] != pytest.approx(every_step[3], rel=1e-3)  # the norm changes step to step


def test_cpu_kernels_choice_is_checked_and_reaches_xla():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from dlexp.errors import ConfigError
    from dlexp.loop.xla_cpu import compiler_options
    from dlexp.models import CNN

    assert compiler_options("xla", platform="cpu", pmap=False) is None  # XLA's own: the compile-cache key stays
    assert compiler_options("ynn_dots", platform="gpu", pmap=False) is None
    with pytest.raises(ConfigError, match=r"trainer.cpu_kernels='fast'; valid: xla, ynn_dots"):
        compiler_options("fast", platform="cpu", pmap=False)
    graphdef, params = nnx.split(CNN((12, 12, 1), 3, pool="avg", rngs=nnx.Rngs(0)))
    x = jnp.ones((8, 12, 12, 1))
    lowered = jax.jit(jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x)))).lower(params)
    count = lambda setting: (
        lowered.compile(  # noqa: E731
            compiler_options(setting, platform="cpu", pmap=False)
        )
        .as_text()
        .count("__ynn_fusion")
    )
    # XLA's own choice hands the convolutions to YNNPACK as well; ynn_dots keeps only the products there.
    assert 0 < count("ynn_dots") < count("xla")


def test_ynn_dots_train_to_the_same_losses(compose, tmp_path):
    runs = {}
    for setting in ("xla", "ynn_dots"):
        cfg = compose(["model=cnn", *TINY, "dataset=synthetic", "dataset.rows=400", f"trainer.cpu_kernels={setting}"])
        _, summary = run(cfg, str(tmp_path / setting))
        runs[setting] = (train_losses(tmp_path / setting), summary)
    (lx, sx), (ly, sy) = runs["xla"], runs["ynn_dots"]
    assert (sx["cpu_kernels"], sy["cpu_kernels"]) == ("xla", "ynn_dots")
    assert [v for _, v in ly] == pytest.approx([v for _, v in lx], rel=1e-3)  # other summation orders only
    assert sy["test"]["loss"] == pytest.approx(sx["test"]["loss"], rel=1e-3)


def test_ynn_dots_under_pmap_is_a_clear_error(cli, tmp_path):
    out = cli(
        "model=mlp",
        "dataset=wine",
        "trainer.steps=2",
        "trainer.parallel=pmap",
        "trainer.cpu_kernels=ynn_dots",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert out.returncode != 0 and "trainer.cpu_kernels=ynn_dots" in out.stderr and "parallel=mesh" in out.stderr
