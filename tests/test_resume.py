"""Fault injection for real: the CLI in a subprocess, stopped by SIGTERM and killed by SIGKILL
mid-run, then resumed by the same command; it must end bitwise where an uninterrupted run ends."""

import signal
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import read_json, run_cli, start_cli

import dlexp
from dlexp.checkpoint import checkpoint_dir, saved_steps
from dlexp.hooks.stopping import EXIT_PREEMPTED

STEPS = 300
# Dropout on, 3 batches per epoch: the resumed run must redraw the same batches and keys.
BASE_ARGS = [
    "model=mlp",
    "model.hidden=[32]",
    "model.dropout=0.2",
    "dataset=wine",
    "trainer.batch_size=32",
    f"trainer.steps={STEPS}",
    "trainer.eval_every=50",
    "trainer.log_every=25",
    "trainer.progress=false",
    "trainer.parallel=single",
    "logger=jsonl",
    "logger.console=false",
    "trainer.checkpoint.every_steps=25",
    "trainer.checkpoint.every_epochs=null",
    "trainer.checkpoint.min_interval_s=0",
]


def signal_after_checkpoint(proc, run_dir, step: int, sig: int) -> int:
    """Sends `sig` once a checkpoint at `step` or later is on disk; returns the exit code."""
    while not any(s >= step for s in saved_steps(run_dir)):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before step {step}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.005)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def final_state(run_dir) -> dict:
    """The saved train state (params, optimizer, step) at the last step, as numpy arrays."""
    mgr = ocp.CheckpointManager(
        checkpoint_dir(run_dir),
        options=ocp.CheckpointManagerOptions(read_only=True),
        item_handlers={"state": ocp.PyTreeCheckpointHandler()},
    )
    state = mgr.restore(STEPS, args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))["state"]
    mgr.close()
    return state


def assert_bitwise_equal(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_bitwise_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f"{path}.{i}")
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.dtype == y.dtype and x.shape == y.shape, path
        assert x.tobytes() == y.tobytes(), f"{path} differs"


@pytest.mark.parametrize("layout", ["single", "copies"])
def test_sigterm_then_sigkill_then_resume_ends_bitwise_identical(tmp_path, cache_dir, layout):
    """A single run, and 4 seeds as copies (their stacked state saved and restored)."""
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "interrupted"
    args = [*BASE_ARGS, *(["trainer.seeds=4"] if layout == "copies" else [])]
    # The uninterrupted reference in this process (the CLI is what is interrupted below): one Python
    # and JAX start-up fewer.
    ref = dlexp.run([*args, f"paths.cache={cache_dir}"], run_dir=str(ref_dir))
    assert ref["status"] == "completed" and ref["steps"] == STEPS

    # 1. SIGTERM (a preemption): saves where it stopped, status "preempted", the requeue exit code.
    code, out = signal_after_checkpoint(
        start_cli([*args, f"hydra.run.dir={run_dir}"], tmp_path, cache_dir), run_dir, 50, signal.SIGTERM
    )
    assert code == EXIT_PREEMPTED, out[-3000:]
    assert "Traceback" not in out and "preempted at step" in out
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "preempted" and summary["preempted_by"] == "SIGTERM"
    stopped = summary["steps"]
    assert 50 <= stopped < STEPS and max(saved_steps(run_dir)) == stopped

    # 2. The same command resumes; SIGKILL it mid-way (maybe mid-save: Orbax's temp dir must not count).
    code, out = signal_after_checkpoint(
        start_cli([*args, f"hydra.run.dir={run_dir}"], tmp_path, cache_dir), run_dir, stopped + 75, signal.SIGKILL
    )
    assert code == -signal.SIGKILL
    killed_at = max(saved_steps(run_dir))
    assert stopped < killed_at < STEPS

    # 3. The same command again finishes the run.
    run_cli([*args, f"hydra.run.dir={run_dir}"], tmp_path, cache_dir, check=True)
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == STEPS
    assert summary["checkpoint"]["resumed_from_step"] >= killed_at

    ref = read_json(ref_dir / "summary.json")
    assert_bitwise_equal(final_state(run_dir), final_state(ref_dir))
    if layout == "copies":
        assert len(summary["copies"]) == 4 and summary["copies"] == ref["copies"]
    else:
        assert summary["test"] == ref["test"] and summary["best"] == ref["best"]


def test_a_clashing_run_dir_is_refused_before_hydra_writes_there(tmp_path, cache_dir):
    run_dir = tmp_path / "done"
    fast = ["model=mlp", "dataset=wine", "debug=fast", "logger=none", "trainer.checkpoint.enabled=false"]
    dlexp.run([*fast, f"paths.cache={cache_dir}"], run_dir=str(run_dir))  # the earlier run, with its .hydra/
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    proc = run_cli([*fast, f"hydra.run.dir={run_dir}", "seed=5"], tmp_path, cache_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"dlexp error: run dir {run_dir} already holds a run (summary.json, status completed)" in proc.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config  # the earlier run's config is intact
