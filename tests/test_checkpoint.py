"""Checkpoints, resume and guards in-process on tiny runs: real Orbax checkpoints on disk."""

import logging
import os
import shutil

import pytest
from conftest import CHECKPOINTED_MLP, read_json

from dlexp.checkpoint import checkpoint_dir, saved_steps
from dlexp.errors import ConfigError, DlexpError, TrainingError
from dlexp.train import run

TINY = [*CHECKPOINTED_MLP, "dataset=wine"]


def test_resume_is_exact_and_a_damaged_checkpoint_falls_back(compose, tmp_path, caplog):
    cfg = compose([*TINY, "trainer.steps=24", "model.dropout=0.3", "trainer.checkpoint.keep=10"])
    _, full = run(cfg, str(tmp_path / "full"))
    _, again = run(cfg, str(tmp_path / "again"))
    assert again["test"] == full["test"] and again["final"] == full["final"]  # same seed and config: same numbers
    assert saved_steps(tmp_path / "again") == [6, 12, 18, 24]

    # Take the run back to step 18, damage that step, and leave a save cut off by a kill.
    ckpts = checkpoint_dir(tmp_path / "again")
    shutil.rmtree(os.path.join(ckpts, "24"))
    for root, _, files in os.walk(os.path.join(ckpts, "18", "state")):  # truncate the newest state's files
        for f in files:
            if not f.startswith("_"):
                open(os.path.join(root, f), "wb").close()
    os.makedirs(os.path.join(ckpts, "24.orbax-checkpoint-tmp-1"))
    with caplog.at_level(logging.WARNING, logger="dlexp"):
        _, resumed = run(cfg, str(tmp_path / "again"))
    assert "checkpoint at step 18" in caplog.text and "trying the previous one" in caplog.text
    assert resumed["checkpoint"]["resumed_from_step"] == 12 and resumed["status"] == "completed"
    assert resumed["test"] == full["test"] and resumed["final"] == full["final"] and resumed["best"] == full["best"]

    for step in saved_steps(tmp_path / "again"):  # nothing left to restore: a clear error
        shutil.rmtree(os.path.join(ckpts, str(step), "state"))
    with pytest.raises(DlexpError, match="no checkpoint in .* can be restored .*delete the directory to start over"):
        run(cfg, str(tmp_path / "again"))


@pytest.mark.parametrize(
    "change,message",
    [
        (
            "model.hidden=[8]",
            r"does not fit this config: params\.body\.layers\.0\.bias is shape \(16,\) there but \(8,\) here",
        ),
        ("seed=3", "seed=3, but the checkpoint in .* was trained with seed=0"),
        ("trainer.batch_size=16", "trainer.batch_size is 16, but the checkpoint in .* was trained with 32"),
    ],
)
def test_resuming_with_another_config_names_the_difference(compose, tmp_path_factory, tmp_path, change, message):
    saved = tmp_path_factory.getbasetemp() / "six_steps"
    if not saved.exists():  # one short run, shared by the cases
        run(compose([*TINY, "trainer.steps=6"]), str(saved))
    shutil.copytree(saved, tmp_path / "r")
    with pytest.raises(ConfigError, match=message):
        run(compose([*TINY, "trainer.steps=12", change]), str(tmp_path / "r"))


def test_an_earlier_run_without_checkpoints_is_never_overwritten(compose, tmp_path):
    cfg = compose([*TINY, "trainer.steps=6", "trainer.checkpoint.enabled=false"])
    run(cfg, str(tmp_path / "r"))
    before = (tmp_path / "r" / "summary.json").read_text()
    with pytest.raises(ConfigError, match="already holds a run .*status completed.* and no checkpoint"):
        run(cfg, str(tmp_path / "r"))
    assert (tmp_path / "r" / "summary.json").read_text() == before


def test_a_run_dir_in_use_by_a_live_process_is_refused(compose, tmp_path):
    import json
    import platform
    import subprocess

    (tmp_path / "r").mkdir()
    other = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "r" / ".lock").write_text(json.dumps({"pid": other.pid, "host": platform.node()}))
        with pytest.raises(ConfigError, match=f"in use by process {other.pid}"):
            run(compose([*TINY, "trainer.steps=6"]), str(tmp_path / "r"))
    finally:
        other.kill()
        other.wait()
    _, s = run(compose([*TINY, "trainer.steps=6"]), str(tmp_path / "r"))  # a dead owner's lock is stale
    assert s["status"] == "completed" and not (tmp_path / "r" / ".lock").exists()


def test_trainer_resume_starts_from_another_run_dir(compose, tmp_path):
    run(compose([*TINY, "trainer.steps=12"]), str(tmp_path / "a"))
    _, s = run(compose([*TINY, "trainer.steps=18", f"trainer.resume={tmp_path / 'a'}"]), str(tmp_path / "b"))
    assert s["checkpoint"]["resumed_from_step"] == 12 and saved_steps(tmp_path / "a") == [6, 12]
    with pytest.raises(ConfigError, match="trainer.resume='nowhere': no such run dir"):
        run(compose([*TINY, "trainer.steps=6", "trainer.resume=nowhere"]), str(tmp_path / "c"))


def test_early_stopping_stops_and_resumes_its_counters(compose, tmp_path):
    # min_delta so large that nothing after the first evaluation counts as an improvement
    es = ["trainer.early_stopping.patience=2", "trainer.early_stopping.min_delta=100"]
    _, s = run(compose([*TINY, "trainer.steps=60", *es]), str(tmp_path / "r"))
    assert s["status"] == "completed" and s["steps"] == 18 and s["early_stopping"]["stopped_at"] == 18
    assert read_json(tmp_path / "r" / "summary.json")["steps"] == 18
    _, s = run(compose([*TINY, "trainer.steps=12", *es]), str(tmp_path / "k"))  # stops at its end, 1 bad eval
    _, s = run(compose([*TINY, "trainer.steps=60", *es]), str(tmp_path / "k"))  # the counter came back: 1 more
    assert s["steps"] == 18 and s["early_stopping"]["stopped_at"] == 18
    with pytest.raises(ConfigError, match="trainer.early_stopping.patience=0 must be at least 1"):
        run(compose([*TINY, "trainer.steps=6", "trainer.early_stopping.patience=0"]), str(tmp_path / "bad"))


NAN = ["optimizer=sgd", "optimizer.lr=1e12", "optimizer.momentum=null"]


def test_nonfinite_update_stops_naming_the_step_and_keeps_finite_checkpoints(compose, tmp_path):
    with pytest.raises(TrainingError, match=r"between steps 0 and 6, first at step [1-6] .*nan_policy=skip"):
        run(compose([*TINY, "trainer.steps=12", *NAN]), str(tmp_path / "r"))
    assert saved_steps(tmp_path / "r") == []  # no non-finite parameters were saved
    assert read_json(tmp_path / "r" / "summary.json")["status"] == "failed"


def test_nan_policy_skip_fails_a_run_it_cannot_save(compose, tmp_path):
    # Every update after the first overflows and is skipped: the parameters stay finite but blown up.
    with pytest.raises(TrainingError, match=r"val loss was not finite at any of 2 evaluation\(s\) up to step 12"):
        run(compose([*TINY, "trainer.steps=12", *NAN, "trainer.nan_policy=skip"]), str(tmp_path / "r"))
    assert read_json(tmp_path / "r" / "summary.json")["status"] == "failed"


def test_orbax_noise_is_quiet_and_real_failures_are_not(compose, tmp_path, caplog):
    from dlexp.checkpoint import Checkpoints, reason

    run(compose([*TINY, "trainer.steps=12"]), str(tmp_path / "r"))
    os.remove(os.path.join(checkpoint_dir(tmp_path / "r"), "6", "_CHECKPOINT_METADATA"))  # a save cut off at its end
    with caplog.at_level(logging.INFO):
        Checkpoints(str(tmp_path / "r"), read_only=True).close()  # what evaluate and predict open
        _, s = run(compose([*TINY, "trainer.steps=18"]), str(tmp_path / "r"))
    assert s["checkpoint"]["resumed_from_step"] == 12
    assert "read_only=True" not in caplog.text and "Metadata file does not exist" not in caplog.text
    assert not [r for r in caplog.records if r.name == "absl" and r.levelno >= logging.WARNING]

    e = ValueError(
        "DATA_LOSS: <bound method pybind11_detail_function_record_v1.__call__ of <object at 0x7f00>> "
        'bad chunk [tensorstore_spec=\'{"driver": "zarr"}\']\nmore'
    )
    assert reason(e) == "DATA_LOSS: bad chunk"


def test_closed_event_loop_callbacks_after_a_failed_restore_are_dropped():
    from types import SimpleNamespace

    from dlexp import checkpoint

    seen = []
    hook = checkpoint._quiet_closed_loop(seen.append)
    closed = SimpleNamespace(exc_value=RuntimeError("Event loop is closed"))
    other = SimpleNamespace(exc_value=RuntimeError("something else"))
    restored, checkpoint._restored_dirs = checkpoint._restored_dirs, set()
    try:
        hook(closed)  # no restore yet: not ours to hide
        checkpoint._restored_dirs.add("/x/checkpoints")
        hook(closed)
        hook(other)
    finally:
        checkpoint._restored_dirs = restored
    assert seen == [closed, other]


@pytest.mark.parametrize(
    "change,message",
    [
        ("trainer.checkpoint.keep=0", "trainer.checkpoint.keep=0 must be at least 1"),
        ("trainer.checkpoint.every_steps=0", "trainer.checkpoint.every_steps=0 must be at least 1 (or null: off)"),
        ("trainer.resume=x", "trainer.resume='x' needs trainer.checkpoint.enabled=true"),
    ],
)
def test_bad_checkpoint_settings_are_named(compose, tmp_path, change, message):
    extra = ["trainer.checkpoint.enabled=false"] if change.startswith("trainer.resume") else []
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(compose([*TINY, "trainer.steps=6", change, *extra]), str(tmp_path / "r"))
