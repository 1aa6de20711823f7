"""Shared fixtures: Hydra's compose API over conf/, a shared data cache, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


# The test files that keep a worker longest, longest first (per-file times: docs/performance.md,
# "The test suite's time"). `--dist loadfile` hands whole files to the workers in collection
# order; started first, the long files run alongside the many short ones instead of after them
# (xdist's own order, most tests first, left the few-test multi-process runs and the wheel to the
# end, on a worker of their own). A new slow file belongs in this list.
SLOW_FIRST = [
    "test_cli.py",
    "test_experiments.py",
    "test_sweeper.py",
    "test_models.py",
    "test_multihost.py",
    "test_text.py",
    "test_parallel.py",
    "test_speed.py",
    "test_resume.py",
    "test_sweep.py",
    "test_quality.py",
    "test_product.py",
    "test_wheel.py",
    "test_checkpoint.py",
    "test_inspection.py",
    "test_seq2seq.py",
    "test_data_images.py",
    "test_mlflow.py",
    "test_copies.py",
    "test_report.py",
    "test_seeds.py",
    "test_tasks.py",
    "test_tensorboard_server.py",
    "test_sweeper_services.py",
]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below, not "most tests first"
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: the rest keep their order


# Every program JAX compiles goes to the persistent cache, not only those over dlexp's 0.2 s: the
# suite's runs compile the same small programs (metrics, evaluation, initializers) in process after
# process, at ~0.05 s each, ~2 s of a CLI run's start (docs/performance.md). Subprocesses inherit it.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One cache of built-in data sets and compiled programs (`jax/`) for the whole run, shared by
    the xdist workers: a data set is written once, a program compiled once (both write atomically
    or tolerate a concurrent writer: a half-written program is compiled again)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # <run's basetemp>/popen-gwN: share the run's
        base = base.parent
    path = base / "cache"
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.fixture()
def compose(cache_dir):
    """compose(["model=mlp", ...]) -> the config `python -m dlexp.train ...` would get."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dlexp.config import register_configs

    register_configs()

    def _compose(overrides=(), return_hydra_config=False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(
                "train",
                overrides=[f"paths.cache={cache_dir}", *overrides],
                return_hydra_config=return_hydra_config,
            )

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(args, cwd, cache_dir, env=None, module="dlexp.train", check=None):
    """Runs `python -m <module> args...` for real; returns the CompletedProcess."""
    full_env = {**os.environ, "DLEXP_CACHE": cache_dir, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600
    )
    if check is not None and (proc.returncode == 0) != check:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}")
    return proc


def start_cli(args, cwd, cache_dir, env=None, stderr=subprocess.STDOUT):
    """Starts `python -m dlexp.train args...` without waiting (to kill it, or to run two at once)."""
    full_env = {**(env or os.environ), "DLEXP_CACHE": cache_dir, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "dlexp.train", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


# A tiny single-device mlp that checkpoints every 6 steps, synchronously (its data set: the test's).
CHECKPOINTED_MLP = [
    "model=mlp",
    "model.hidden=[16]",
    "trainer.batch_size=32",
    "trainer.eval_every=6",
    "trainer.log_every=6",
    "trainer.progress=false",
    "trainer.parallel=single",
    "logger=none",
    "trainer.checkpoint.every_steps=6",
    "trainer.checkpoint.every_epochs=null",
    "trainer.checkpoint.min_interval_s=0",
    "trainer.checkpoint.async_save=false",
]

# A tiny mlp run on wine, for sweeps whose jobs only need to finish.
QUICK_MLP = [
    "model=mlp",
    "model.hidden=[16]",
    "dataset=wine",
    "trainer.steps=4",
    "trainer.eval_every=2",
    "trainer.progress=false",
    "trainer.checkpoint.enabled=false",
    "logger=none",
    "logger.console=false",
]


@pytest.fixture()
def cli(tmp_path, cache_dir):
    def _cli(*args, check=None, env=None, module="dlexp.train"):
        return run_cli(list(args), tmp_path, cache_dir, env=env, module=module, check=check)

    return _cli


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)
