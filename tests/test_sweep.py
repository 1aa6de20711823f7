"""Sweeps for real: a grid multirun, a failing job among passing ones under joblib,
submitit_local, an Optuna search that continues its study, and the results table."""

import json
import math
import os
import sqlite3

import polars as pl
import pytest
import yaml
from conftest import read_json

from dlexp import sweep

TINY = [
    "model=mlp",
    "dataset=wine",
    "trainer.steps=4",
    "trainer.eval_every=2",
    "trainer.log_every=2",
    "trainer.progress=false",
    "trainer.checkpoint.enabled=false",
    "logger.console=false",
]


def job_dirs(sweep_dir):
    return sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: int(p.name))


def test_grid_multirun_each_job_in_its_dir_compared_in_tensorboard(cli, tmp_path):
    sweep_dir = tmp_path / "grid"
    proc = cli(
        "-m", *TINY, "optimizer.lr=3e-3,1e-2", "model.dropout=0.0,0.2", f"hydra.sweep.dir={sweep_dir}", check=True
    )
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    seen, names = set(), set()
    for job in jobs:
        assert read_json(job / "summary.json")["status"] == "completed"
        tb = read_json(job / "run.json")["tensorboard"]  # <sweep>/tb/<the job's swept values>
        acc = EventAccumulator(tb)
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        hp = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info.hparams
        lr, dropout = hp["optimizer.lr"].number_value, hp["model.dropout"].number_value
        names.add(os.path.basename(tb))
        seen.add((lr, dropout))
        metrics = {
            m.name.tag
            for m in plugin_data_pb2.HParamsPluginData.FromString(
                content["_hparams_/experiment"]
            ).experiment.metric_infos
        }
        assert {"test/accuracy", "val_best/loss"} <= metrics
    assert seen == {(0.003, 0.0), (0.003, 0.2), (0.01, 0.0), (0.01, 0.2)}
    assert names == {f"optimizer.lr={lr},model.dropout={d}" for lr in ("0.003", "0.01") for d in ("0.0", "0.2")}

    # The callback's results table: one row per job, best first, and the best job's command.
    table = pl.read_parquet(sweep_dir / "results.parquet")
    assert table.height == 4 and set(table["status"]) == {"completed"}
    assert table["objective"].to_list() == sorted(table["objective"].to_list())
    assert "python -m dlexp.train" in proc.stderr and "| job" in proc.stderr


def test_a_failing_job_is_recorded_and_the_others_finish_under_joblib(cli, tmp_path):
    sweep_dir = tmp_path / "joblib"
    proc = cli(
        "-m",
        "launcher=joblib",
        "sweep.pack=false",  # each job its own process and share of the machine
        *TINY,
        "logger=none",
        "optimizer.lr=3e-3,-1,1e-2",
        f"hydra.sweep.dir={sweep_dir}",
        check=False,
    )
    assert proc.returncode != 0  # only after every job ran
    jobs = job_dirs(sweep_dir)
    statuses = [read_json(j / "summary.json")["status"] for j in jobs]
    assert statuses == ["completed", "failed", "completed"]
    assert "optimizer.lr=-1 must be a positive number" in read_json(jobs[1] / "summary.json")["error"]
    assert "1 of 3 jobs failed" in proc.stderr
    # Two jobs at once on this machine: each pinned to its own share of the cores.
    shares = [read_json(j / "run.json")["resources"] for j in jobs]
    assert all(s["env"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for s in shares)
    if len(os.sched_getaffinity(0)) >= 2:
        assert all(len(s["cpu_cores"]) == len(os.sched_getaffinity(0)) // 2 for s in shares)
        assert {s["env"]["DLEXP_JOB_SLOT"] for s in shares} == {"0/2", "1/2"}
    table = pl.read_parquet(sweep_dir / "results.parquet")
    assert table["status"].to_list() == ["completed", "completed", "failed"]  # failures last


def test_submitit_local_runs_each_job_in_its_own_process(cli, tmp_path):
    sweep_dir = tmp_path / "submitit"
    cli(
        "-m",
        "launcher=submitit_local",
        *TINY,
        "logger=none",
        "optimizer.lr=3e-3,1e-2",
        f"hydra.sweep.dir={sweep_dir}",
        check=True,
    )
    jobs = job_dirs(sweep_dir)
    assert [read_json(j / "summary.json")["status"] for j in jobs] == ["completed", "completed"]
    assert (sweep_dir / ".submitit").is_dir()


def test_optuna_preset_records_its_trials_in_its_study(cli, tmp_path):
    """The preset's search space and direction reach the study (tests/test_sweeper.py continues a study)."""
    multirun = tmp_path / "multirun"
    args = [
        "hparams_search=optuna_mlp",
        *TINY,
        "logger=none",
        "objective.metric=val/accuracy",
        "objective.mode=max",
        f"paths.multirun={multirun}",
    ]
    cli(*args, "hydra.sweeper.n_trials=2", "hydra.sweep.dir=" + str(tmp_path / "first"), check=True)
    jobs = job_dirs(tmp_path / "first")
    assert len(jobs) == 2
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert any(o.startswith("optimizer.lr=") for o in overrides)
        assert any(o.startswith("model.hidden=") for o in overrides)
        assert read_json(job / "summary.json")["objective"]["mode"] == "max"
    with sqlite3.connect(multirun / "optuna_mlp.db") as db:
        states = [s for (s,) in db.execute("select state from trials")]
        direction = db.execute("select direction from study_directions").fetchone()[0]
    assert states == ["COMPLETE"] * 2 and direction == "MAXIMIZE"


# --------------------------------------------------------------------------- the table, from files


def write_job(root, num, overrides, summary, seed=0):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "model": {"dropout": 0.1}}))
    if summary is not None:
        (job / "summary.json").write_text(json.dumps(summary))


def done(value, acc, seed=None):
    s = {
        "status": "completed",
        "objective": {"metric": "val/loss", "mode": "min", "value": value},
        "best": {"step": 4, "val": {"loss": value}},
        "test": {"loss": value, "accuracy": acc},
        "wall_time_s": 1.0,
    }
    return s if seed is None else {**s, "seed": seed}


def test_the_results_table_ranks_groups_and_names_the_best_job(tmp_path, capsys):
    root = tmp_path / "sweep"
    write_job(root, 0, ["optimizer.lr=0.1", "seed=0"], done(0.5, 0.8), seed=0)
    write_job(root, 1, ["optimizer.lr=0.1", "seed=1"], done(0.7, 0.6), seed=1)
    write_job(root, 2, ["optimizer.lr=0.01", "seed=0"], done(0.2, 0.9), seed=0)
    write_job(root, 3, ["optimizer.lr=-1", "seed=0"], {"status": "failed", "error": "optimizer.lr=-1 must be positive"})
    write_job(
        root,
        4,
        ["optimizer.lr=0.001", "trainer.seeds=2"],  # a vectorized job: a row per seed
        {"status": "completed", "wall_time_s": 2.0, "copies": [done(0.3, 0.85, seed=0), done(0.4, 0.8, seed=1)]},
    )
    write_job(root, 5, ["optimizer.lr=0.3", "seed=0"], None)  # killed before it wrote a summary

    ranked = sweep.report([str(root)], across="seed")
    out = capsys.readouterr().out
    assert ranked["job"].to_list() == ["2", "4", "4", "0", "1", "3", "5"]
    assert ranked["status"].to_list()[-2:] == ["failed", "missing"]
    assert ranked.filter(pl.col("job") == "4")["seed"].to_list() == [0, 1]
    assert "best (val/loss = 0.2): python -m dlexp.train optimizer.lr=0.01 seed=0" in out
    assert "job 3 failed: optimizer.lr=-1 must be positive" in out
    assert pl.read_csv(root / "results.csv").height == 7 and (root / "results.parquet").exists()

    grouped = sweep.group(sweep.collect([str(root)]), ["optimizer.lr"])
    row = grouped.filter(pl.col("optimizer.lr") == "0.1").row(0, named=True)
    assert row["n"] == 2 and row["objective mean"] == pytest.approx(0.6)
    assert row["objective std"] == pytest.approx(math.sqrt(0.02))  # sample std of 0.5, 0.7
    assert grouped.filter(pl.col("optimizer.lr") == "-1").row(0, named=True)["failed"] == 1
    # Any config key can be a group, not only an override.
    by_dropout = sweep.group(sweep.collect([str(root)], extra_keys=["model.dropout"]), ["model.dropout"])
    assert by_dropout.row(0, named=True)["n"] == 5
