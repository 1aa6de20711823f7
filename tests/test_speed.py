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


def test_calls_stop_at_every_epoch_log_and_eval_boundary():
    from dlexp.trainer import Plan

    plan = Plan(batch_size=8, steps_per_epoch=7, total_steps=20, eval_every=6, log_every=4)
    step, epoch, calls = 0, 0, []
    while step < plan.total_steps:
        n = plan.call_length(step, epoch, most=5)
        calls.append(n)
        step += n
        epoch = plan.epoch_after(step, epoch)
    # boundaries: logs at 4 8 12 16 20, evals at 6 12 18, epochs at 7 14
    assert calls == [4, 2, 1, 1, 4, 2, 2, 2, 2]
    assert plan.crossed(8, 7, 4) and not plan.crossed(7, 4, 4) and plan.crossed(20, 18, 6)


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


def test_steps_per_call_auto_fuses_only_where_it_was_measured_faster():
    import jax

    from dlexp.errors import ConfigError
    from dlexp.trainer import FUSED_STEPS_CPU, steps_per_call

    assert jax.default_backend() == "cpu"
    assert steps_per_call("auto", conv=False, devices=1) == FUSED_STEPS_CPU  # the mlp: +7% measured
    assert steps_per_call("auto", conv=True, devices=1) == 1  # conv gradients in a scan: slower
    assert steps_per_call("auto", conv=False, devices=2) == 1  # a mesh: one call in flight anyway
    assert steps_per_call(3, conv=True, devices=2) == 3  # an explicit value always wins
    for bad in (0, -2, "fast", 2.5, True):
        with pytest.raises(ConfigError, match="trainer.steps_per_call"):
            steps_per_call(bad, conv=False, devices=1)


def test_default_run_records_its_steps_per_call_and_steady_speed(compose, tmp_path):
    cfg = compose(["model=mlp", *TINY, "trainer.parallel=single"])
    _, summary = run(cfg, str(tmp_path / "r"))
    assert summary["steps_per_call"] == 10 and summary["steps"] == 12
    assert summary["steady_samples_per_s"] > 0


@pytest.mark.parametrize("k", [1, 2, 4])
def test_the_logged_gradient_norm_is_the_norm_at_the_log_step(compose, tmp_path, k):
    """Taken only at log steps (k=1: a lax.cond on the step; k=2: a call without a log step, then
    one step plus the measured one; k=4: three steps plus the measured one): equal to a run that
    takes and logs it every step."""
    def grad_norms(name, extra):
        cfg = compose(["model=mlp", *TINY, "dataset=synthetic", "dataset.rows=2000", "trainer.parallel=single",
                       "trainer.eval_every=12", *extra])
        run(cfg, str(tmp_path / name))
        rows = [json.loads(l) for l in open(tmp_path / name / "metrics.jsonl")]
        return {r["step"]: r["train/grad_norm"] for r in rows if "train/grad_norm" in r}

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
    from dlexp.kernels import compiler_options, resolve
    from dlexp.models import CNN

    assert resolve("ynn_dots", "cpu") == "ynn_dots" and resolve("ynn_dots", "gpu") == "xla"
    with pytest.raises(ConfigError, match=r"trainer.cpu_kernels='fast'; valid: xla, ynn_dots"):
        resolve("fast", "cpu")
    graphdef, params = nnx.split(CNN((12, 12, 1), 3, pool="avg", rngs=nnx.Rngs(0)))
    x = jnp.ones((8, 12, 12, 1))
    lowered = jax.jit(jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x)))).lower(params)
    count = lambda setting: lowered.compile(compiler_options(setting)).as_text().count("__ynn_fusion")  # noqa: E731
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


def test_cpu_vector_width_is_checked_and_reaches_xla(tmp_path):
    import jax
    import jax.numpy as jnp

    from dlexp.errors import ConfigError
    from dlexp.kernels import avx512_at_full_clock, compiler_options, cpu_info, resolve_width

    assert resolve_width(512, "cpu") == 512 and resolve_width(256, "cpu") == 256 and resolve_width(512, "gpu") is None
    assert resolve_width("auto", "cpu") == (512 if avx512_at_full_clock() else 256)
    for bad in (1024, "wide", True):
        with pytest.raises(ConfigError, match=r"trainer.cpu_vector_width=.*; valid: auto, 256, 512"):
            resolve_width(bad, "cpu")
    assert compiler_options("xla", 256) is None  # XLA's own setting: the compile-cache key stays XLA's

    # The width reaches LLVM: the optimized IR of an elementwise loop holds vectors of 16 floats, not 8
    # (where the CPU has 512-bit registers at all; elsewhere LLVM stays at 8 whatever it is told).
    lowered = jax.jit(lambda a, b: jnp.sqrt(a * a + b) / (b + 1.0)).lower(jnp.ones(4096), jnp.ones(4096))
    vectors = {}
    for width in (256, 512):
        dump = tmp_path / str(width)
        lowered.compile({**(compiler_options("xla", width) or {}), "xla_dump_to": str(dump)})
        ir = "".join(p.read_text(errors="ignore") for p in dump.glob("*ir-with-opt.ll"))
        vectors[width] = (ir.count("<8 x float>"), ir.count("<16 x float>"))
    assert vectors[256][0] > 0 and vectors[256][1] == 0
    if "avx512f" in cpu_info().get("flags", "").split():
        assert vectors[512][1] > 0 and vectors[512][0] == 0


def test_cpu_vector_widths_train_to_the_same_losses(compose, tmp_path):
    runs = {}
    for width in (256, 512):
        cfg = compose(["model=mlp", *TINY, f"trainer.cpu_vector_width={width}"])
        _, summary = run(cfg, str(tmp_path / str(width)))
        runs[width] = (train_losses(tmp_path / str(width)), summary)
    (l256, s256), (l512, s512) = runs[256], runs[512]
    assert (s256["cpu_vector_width"], s512["cpu_vector_width"]) == (256, 512)
    assert [v for _, v in l512] == pytest.approx([v for _, v in l256], rel=1e-5)  # other summation orders only
    assert s512["test"]["loss"] == pytest.approx(s256["test"]["loss"], rel=1e-5)


def test_explicit_vector_width_under_pmap_is_a_clear_error(cli, tmp_path):
    out = cli("model=mlp", "dataset=wine", "trainer.steps=2", "trainer.parallel=pmap", "trainer.cpu_vector_width=512",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert out.returncode != 0 and "trainer.cpu_vector_width=512" in out.stderr and "parallel=mesh" in out.stderr


def test_ynn_dots_under_pmap_is_a_clear_error(cli, tmp_path):
    out = cli("model=mlp", "dataset=wine", "trainer.steps=2", "trainer.parallel=pmap", "trainer.cpu_kernels=ynn_dots",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert out.returncode != 0 and "trainer.cpu_kernels=ynn_dots" in out.stderr and "parallel=mesh" in out.stderr
