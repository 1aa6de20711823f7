"""The Hydra main's recipe in-process: it returns the objective sweepers optimize."""

import math

from conftest import read_json

from dlexp.train import run


def test_run_returns_the_objective_and_is_reproducible(compose, tmp_path):
    cfg = compose(
        [
            "model=mlp",
            "dataset=wine",
            "trainer.steps=20",
            "trainer.eval_every=5",
            "trainer.progress=false",
            "objective.metric=val/accuracy",
            "objective.mode=max",
            "logger=none",
        ]
    )
    value, summary = run(cfg, str(tmp_path / "a"))
    assert math.isfinite(value) and value == summary["objective"]["value"] == summary["best"]["val"]["accuracy"]
    assert read_json(tmp_path / "a" / "summary.json")["objective"]["value"] == value
    again, summary2 = run(cfg, str(tmp_path / "b"))
    assert again == value and summary2["test"] == summary["test"]  # same seed, same numbers
