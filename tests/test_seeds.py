"""Vectorized seeds: copy s of `seed=b trainer.seeds=[...]` is the single run `seed=s data_seed=b`."""

import json

import numpy as np
import pytest

from conftest import read_json
from dlexp.errors import ConfigError
from dlexp.train import run
from dlexp.vectorized import seed_list

TINY = ["model=mlp", "dataset=wine", "trainer.steps=8", "trainer.eval_every=4", "trainer.log_every=4",
        "trainer.progress=false", "trainer.checkpoint.enabled=false", "logger.console=false"]


def test_vectorized_seeds_equal_the_same_seeds_run_one_by_one(compose, tmp_path):
    _, vec = run(compose([*TINY, "seed=3", "trainer.seeds=[3,7]", "logger=tensorboard"]), str(tmp_path / "vec"))
    assert vec["status"] == "completed" and vec["seeds"] == [3, 7] and len(vec["copies"]) == 2
    for copy in vec["copies"]:
        _, one = run(compose([*TINY, f"seed={copy['seed']}", "data_seed=3", "logger=none"]),
                     str(tmp_path / f"one_{copy['seed']}"))
        assert copy["best"]["step"] == one["best"]["step"]
        assert copy["objective"]["value"] == pytest.approx(one["objective"]["value"], rel=1e-5)
        assert copy["final"]["train"]["loss"] == pytest.approx(one["final"]["train"]["loss"], rel=1e-5)
        for k, v in one["test"].items():
            assert copy["test"][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
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

    for copy in vec["copies"]:
        acc = EventAccumulator(str(tmp_path / "vec" / "tb" / f"seed_{copy['seed']}"))
        acc.Reload()
        assert acc.Scalars("test/loss")[0].value == pytest.approx(copy["test"]["loss"], rel=1e-5)
        assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
    rows = [json.loads(line) for line in (tmp_path / "vec" / "metrics.jsonl").read_text().splitlines()]
    assert {r["seed"] for r in rows if "seed" in r} == {3, 7}


def test_a_seed_count_counts_up_from_the_base_seed():
    assert seed_list(3, 5) == [5, 6, 7]
    assert seed_list([0, 2], 9) == [0, 2]
    for bad in (0, [1, 1], [], "x", True):
        with pytest.raises(ConfigError, match="trainer.seeds"):
            seed_list(bad, 0)
