"""Vectorized seeds: copy s of `seed=b trainer.seeds=[...]` is the single run `seed=s data_seed=b`."""

import json

import numpy as np
import pytest
from conftest import read_json

from dlexp.config import seed_list
from dlexp.errors import ConfigError
from dlexp.train import run

TINY = [
    "model=mlp",
    "dataset=wine",
    "trainer.steps=8",
    "trainer.eval_every=4",
    "trainer.log_every=4",
    "trainer.progress=false",
    "trainer.checkpoint.enabled=false",
    "logger.console=false",
]


def test_vectorized_seeds_equal_the_same_seeds_run_one_by_one(compose, tmp_path):
    _, vec = run(compose([*TINY, "seed=3", "trainer.seeds=[3,7]", "logger=tensorboard"]), str(tmp_path / "vec"))
    assert vec["status"] == "completed" and vec["seeds"] == [3, 7] and len(vec["copies"]) == 2
    for copy in vec["copies"]:
        _, one = run(
            compose([*TINY, f"seed={copy['seed']}", "data_seed=3", "logger=none"]),
            str(tmp_path / f"one_{copy['seed']}"),
        )
        assert copy["best"]["step"] == one["best"]["step"]
        assert copy["objective"]["value"] == pytest.approx(one["objective"]["value"], rel=1e-5)
        assert copy["final"]["train"]["loss"] == pytest.approx(one["final"]["train"]["loss"], rel=1e-5)
        for k, v in one["test"].items():
            assert copy["test"][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
        assert copy["confusion"]["matrix"] == one["confusion"]["matrix"]  # each copy's own, as its run's
    # The copies differ (their own init, dropout and batch order), and the summary aggregates them.
    a, b = (c["final"]["train"]["loss"] for c in vec["copies"])
    assert a != b
    values = [c["objective"]["value"] for c in vec["copies"]]
    assert vec["objective"]["value"] == pytest.approx(np.mean(values))
    assert vec["objective"]["std"] == pytest.approx(np.std(values))
    assert vec["mean"]["test/loss"] == pytest.approx(np.mean([c["test"]["loss"] for c in vec["copies"]]))
    assert read_json(tmp_path / "vec" / "summary.json")["seeds"] == [3, 7]

    # Each copy is its own TensorBoard run, and its own rows of metrics.jsonl.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for copy in vec["copies"]:
        acc = EventAccumulator(str(tmp_path / "vec" / "tb" / f"seed_{copy['seed']}"))
        acc.Reload()
        assert acc.Scalars("test/loss")[0].value == pytest.approx(copy["test"]["loss"], rel=1e-5)
        start = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        group = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.group_name
        assert group == "defaults"  # the job's name: HParams groups its seeds' sessions
    rows = [json.loads(line) for line in (tmp_path / "vec" / "metrics.jsonl").read_text().splitlines()]
    assert {r["seed"] for r in rows if "seed" in r} == {3, 7}


def test_a_seed_count_counts_up_from_the_base_seed():
    assert seed_list(3, 5) == [5, 6, 7]
    assert seed_list([0, 2], 9) == [0, 2]
    for bad in (0, [1, 1], [], "x", True):
        with pytest.raises(ConfigError, match="trainer.seeds"):
            seed_list(bad, 0)


# ---------------------------------------------------------------------------- copies through the one loop

FRAGILE = [
    "model._target_=fragile.SeedFragile",
    "dataset=wine",
    "trainer.steps=12",
    "trainer.eval_every=2",
    "trainer.log_every=2",
    "trainer.progress=false",
    "trainer.checkpoint.enabled=false",
    "logger=none",
    "logger.console=false",
    "seed=3",
]


def test_a_copy_that_goes_nonfinite_fails_alone_and_the_others_finish(compose, tmp_path):
    from fragile import broken

    assert [broken(s) for s in (3, 4, 6)] == [False, True, False]
    _, vec = run(compose([*FRAGILE, "trainer.seeds=[3,4,6]"]), str(tmp_path / "vec"))
    assert vec["status"] == "completed" and vec["failed_copies"] == ["seed_4"]
    status = {c["seed"]: c["status"] for c in vec["copies"]}
    assert status == {3: "completed", 4: "failed", 6: "completed"}
    assert "first at step 1" in vec["copies"][1]["error"]
    for copy in (vec["copies"][0], vec["copies"][2]):  # the failed copy did not disturb them
        _, one = run(compose([*FRAGILE, f"seed={copy['seed']}", "data_seed=3"]), str(tmp_path / f"one_{copy['seed']}"))
        assert copy["test"]["loss"] == pytest.approx(one["test"]["loss"], rel=1e-5)
    assert vec["objective"]["value"] == pytest.approx(
        np.mean([vec["copies"][0]["objective"]["value"], vec["copies"][2]["objective"]["value"]])
    )


def test_every_copy_failing_fails_the_run(compose, tmp_path):
    from dlexp.errors import TrainingError

    with pytest.raises(TrainingError, match="every copy failed"):
        run(compose([*FRAGILE, "trainer.seeds=[4,5]"]), str(tmp_path / "r"))


def test_nan_policy_skip_with_copies_counts_each_copys_skips(compose, tmp_path):
    _, vec = run(compose([*FRAGILE, "trainer.seeds=[3,4]", "trainer.nan_policy=skip"]), str(tmp_path / "r"))
    healthy, fragile = vec["copies"]
    # The fragile copy skips every step; its val loss never finite, it fails after 3 evaluations (step 6).
    assert fragile["skipped_steps"] == 6 and "skipped_steps" not in healthy
    assert fragile["status"] == "failed" and "val loss was not finite at any of 3" in fragile["error"]
    assert healthy["status"] == "completed" and vec["failed_copies"] == ["seed_4"]
    assert np.isfinite(healthy["test"]["loss"])


def test_early_stopping_stops_each_copy_on_its_own(compose, tmp_path):
    es = ["trainer.nan_policy=skip", "trainer.early_stopping.patience=2"]
    _, vec = run(compose([*FRAGILE, *es, "trainer.seeds=[3,4]"]), str(tmp_path / "vec"))
    healthy, fragile = vec["copies"]
    assert vec["early_stopping"]["stopped_at"] == [None, 4]  # the fragile copy never improves: stopped at 2 evals
    assert fragile["status"] == "failed"  # and, its val loss never finite, it ends failed
    assert healthy["status"] == "completed" and vec["steps"] == 12
    _, one = run(compose([*FRAGILE, *es]), str(tmp_path / "one"))  # seed 3 alone trains as its copy did
    assert healthy["test"]["loss"] == pytest.approx(one["test"]["loss"], rel=1e-5)


def test_an_inactive_copy_keeps_its_state():
    import jax.numpy as jnp

    from dlexp.loop.guards import guard_step

    old = {"params": jnp.array([1.0, 2.0]), "step": jnp.array(4)}
    new = {"params": jnp.array([5.0, 6.0]), "step": jnp.array(5)}
    sums = {"loss": jnp.array(0.5), "grad_norm": jnp.array(1.0)}
    kept, out = guard_step(old, new, sums, skip=True, active=jnp.array(False))
    assert kept["params"].tolist() == [1.0, 2.0] and int(kept["step"]) == 5  # the step counter still moves on
    assert int(out["nonfinite"]) == 0 and float(out["loss"]) == 0.0  # a stopped copy is no failure, adds nothing
