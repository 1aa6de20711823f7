"""The loggers' rules without training: tag layout, run names, name claims, logger choices."""

from __future__ import annotations

import threading

from dlexp.loggers import layout, names


def test_per_class_metrics_get_their_own_group_and_headline_stays():
    tags = layout.split_tags("val", {"loss": 0.5, "f1": 0.8, "f1/cat": 0.9, "recall/dog": 0.7})
    assert tags == {"val/loss": 0.5, "val/f1": 0.8, "val_per_class/f1/cat": 0.9, "val_per_class/recall/dog": 0.7}


def test_the_objective_comes_first_then_its_test_value_and_no_per_class_columns():
    best = layout.best_tags({"loss": 0.3, "accuracy": 0.9, "f1/cat": 0.8}, "val/accuracy", 0.9)
    assert best == {"val_best/loss": 0.3, "val_best/accuracy": 0.9}
    metrics = {**best, "test/loss": 0.4, "test/accuracy": 0.88}
    assert layout.comparison_metrics(metrics, "val/accuracy") == [
        "val_best/accuracy",
        "test/accuracy",
        "test/loss",
        "val_best/loss",
    ]
    # An objective on a train metric is still first, under train_best/.
    tags = layout.best_tags({"loss": 0.3}, "train/loss", 0.25)
    assert layout.comparison_metrics({**tags, "test/loss": 0.4}, "train/loss")[0] == "train_best/loss"


def test_run_names_show_the_swept_values_and_shorten_when_long():
    overrides = ["model=mlp", "optimizer.lr=0.001", "trainer.epochs=3", "hydra.sweep.subdir=3"]
    assert names.run_name(overrides, ["model", "optimizer.lr"]) == "model=mlp,optimizer.lr=0.001"
    assert names.run_name(overrides) == "model=mlp,optimizer.lr=0.001,trainer.epochs=3"  # no sweep.json
    assert names.run_name([], None) == "defaults"
    long = [f"optimizer.{k}=0.000123456789" for k in ("lr", "weight_decay", "b1", "b2")]
    short = names.run_name(long)
    assert short.startswith("lr=0.000123456789,weight_decay=") and len(short) <= names.MAX_NAME
    assert names.run_name(["dataset.path=/data/x.csv"]) == "dataset.path=_data_x.csv"  # not a nested run


def test_equal_names_in_one_sweep_are_told_apart_and_a_rerun_keeps_its_own(tmp_path):
    taken = {}

    def claim(job):
        taken[job] = names.claim_name(str(tmp_path), "seed=0", job)

    threads = [threading.Thread(target=claim, args=(str(j),)) for j in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken.values()).count("seed=0") == 1  # exactly one job holds the plain name
    owner = next(j for j, n in taken.items() if n == "seed=0")
    assert all(n == f"seed=0#{j}" for j, n in taken.items() if j != owner)
    assert names.claim_name(str(tmp_path), "seed=0", owner) == "seed=0"  # resumed: the same run


def test_a_sweep_job_is_placed_under_the_sweeps_tb_by_its_swept_values(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "2").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    names.write_swept(str(sweep), ["optimizer.lr"])
    place = names.place_of(str(sweep / "2"), ["model=mlp", "optimizer.lr=0.01"])
    assert (place.name, place.tensorboard) == ("optimizer.lr=0.01", str(sweep / "tb" / "optimizer.lr=0.01"))
    assert place.swept == ("optimizer.lr",) and place.sweep_dir == str(sweep)
    alone = names.place_of(str(tmp_path / "run"), ["model=mlp"])
    assert (alone.name, alone.tensorboard, alone.sweep_dir) == ("model=mlp", str(tmp_path / "run" / "tb"), None)


def test_logger_options_combine(compose):
    both = compose(["logger=[tensorboard,mlflow]"]).logger
    assert (both.tensorboard, both.mlflow, both.jsonl) == (True, True, True)
    alone = compose(["logger=mlflow"]).logger
    assert (alone.tensorboard, alone.mlflow) == (False, True)
    default = compose([]).logger
    assert (default.tensorboard, default.mlflow, default.jsonl) == (True, False, True)


def test_logger_mlflow_without_the_package_says_how_to_install_it(monkeypatch, tmp_path):
    import sys

    import pytest

    from dlexp.config import LoggerConfig
    from dlexp.errors import ConfigError
    from dlexp.loggers.mlflow import connect

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: its import fails
    with pytest.raises(ConfigError, match=r"pip install 'dlexp\[mlflow\]'"):
        connect(LoggerConfig(mlflow=True, store=str(tmp_path)))
