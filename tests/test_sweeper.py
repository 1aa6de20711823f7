"""dlexp's sweeper for real: packed grids equal unpacked ones, jobs fail alone, packs split to fit
memory, a killed packed sweep resumes, and Optuna searches batch their trials."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from conftest import QUICK_MLP, ROOT, read_json, start_cli

from dlexp import sweep
from dlexp.sweeper.members import Member, chunks
from dlexp.sweeper.memory import TooManyCopies, check_fit, check_packing_pays

GRID = [
    "model=mlp",
    "dataset=wine",
    "data_seed=0",  # jobs of both seeds train on one split: they pack together
    "optimizer=sgd",
    "trainer.steps=12",
    "trainer.eval_every=6",
    "trainer.log_every=6",
    "trainer.progress=false",
    "logger.console=false",
    "seed=0,1",
    # 1e9 diverges (its copy fails, its siblings finish); -1 is a bad value (its job fails alone)
    "optimizer.lr=3e-2,1e9,-1",
    # About 2.5 copies of this mlp's estimated size: the 4 valid jobs run 2 at a time.
    "sweep.memory_gb=0.0088",
]


def table(sweep_dir):
    df = sweep.collect([str(sweep_dir)]).sort("job")
    return {row["job"]: row for row in df.iter_rows(named=True)}


@pytest.fixture(scope="module")
def grids(tmp_path_factory, cache_dir):
    """The same 6-job grid packed (the default) and with sweep.pack=false."""
    out = {}
    for name, extra in (("packed", []), ("alone", ["sweep.pack=false"])):
        d = tmp_path_factory.mktemp(name)
        env = {**os.environ, "DLEXP_CACHE": cache_dir, "PYTHONPATH": str(ROOT)}
        args = [sys.executable, "-m", "dlexp.train", "-m", *GRID, *extra, f"hydra.sweep.dir={d / 'sweep'}"]
        proc = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, timeout=600)
        out[name] = (d / "sweep", proc)
    return out


def test_a_packed_grid_equals_the_grid_run_job_by_job(grids):
    (packed_dir, packed), (alone_dir, alone) = grids["packed"], grids["alone"]
    assert packed.returncode == 1 and alone.returncode == 1, packed.stderr[-3000:]  # two jobs fail in each
    pack = json.loads((packed_dir / "packs" / "0.json").read_text())
    assert [m["num"] for m in pack["members"]] == list(range(6))
    assert len(list((packed_dir / "packs" / "0").glob("chunk_*"))) == 2
    a, b = table(packed_dir), table(alone_dir)
    assert set(a) == set(b) == {str(i) for i in range(6)}
    for job, row in a.items():
        assert row["status"] == b[job]["status"], job
        if row["status"] == "completed":
            for k in ("objective", "test/loss", "test/accuracy"):
                assert row[k] == pytest.approx(b[job][k], rel=2e-4, abs=1e-6), (job, k)
    lrs = {job: yaml.safe_load((packed_dir / job / ".hydra" / "overrides.yaml").read_text()) for job in a}
    failed = {job: row["error"] for job, row in a.items() if row["status"] == "failed"}
    assert all("optimizer.lr=-1" in " ".join(lrs[j]) or "1000000000.0" in " ".join(lrs[j]) for j in failed)
    assert len(failed) == 4 and sum("must be a positive number" in e for e in failed.values()) == 2
    assert sum("non-finite" in e for e in failed.values()) == 2


def test_each_packed_job_is_a_run_of_its_own(grids):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    packed_dir = grids["packed"][0]
    for job in ("0", "3"):  # seed 0 and 1 with lr 3e-2
        d = packed_dir / job
        summary = read_json(d / "summary.json")
        assert summary["status"] == "completed" and summary["steps"] == 12, job
        assert sum(map(sum, summary["confusion"]["matrix"])) == 27  # its own test confusion (27 rows)
        assert {"git", "packages", "devices"} <= set(read_json(d / "run.json"))
        assert (d / ".hydra" / "config.yaml").exists()
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["test/loss"] for r in rows if "test/loss" in r] == [pytest.approx(summary["test"]["loss"])]
        acc = EventAccumulator(read_json(d / "run.json")["tensorboard"])  # <sweep>/tb/<its values>
        acc.Reload()
        assert acc.Scalars("test/loss")[0].value == pytest.approx(summary["test"]["loss"], rel=1e-5)
        assert sorted(int(s.name) for s in (d / "checkpoints").iterdir() if s.name.isdigit()) == [12]
    # A packed job's checkpoint is a single run's: dlexp.evaluate reads it alone.
    from dlexp.evaluate import evaluate
    from dlexp.saved_run import load_run

    metrics = evaluate(load_run(str(packed_dir / "3")), split="test")["metrics"]
    assert metrics["loss"] == pytest.approx(read_json(packed_dir / "3" / "summary.json")["test"]["loss"], rel=1e-5)


def test_chunks_are_even_and_one_copy_too_big_is_named():
    members = [Member(i, str(i), [], {}) for i in range(7)]
    assert [len(c) for c in chunks(members, 3)] == [3, 3, 1] or [len(c) for c in chunks(members, 3)] == [3, 2, 2]
    assert [len(c) for c in chunks(members[:6], 4)] == [3, 3]
    with pytest.raises(TooManyCopies, match="one copy alone needs about .* sweep.memory_gb allows") as e:
        check_fit(4, per_copy=2**30, budget=2**29, data_bytes=0)
    assert e.value.fit == 0
    with pytest.raises(TooManyCopies, match="4 copies need about .*; 2 fit") as e:
        check_fit(4, per_copy=2**20, budget=2**21 + 2**19, data_bytes=0)
    assert e.value.fit == 2
    # sweep.pack=null: convolutions on CPU run one at a time; elsewhere, and without them, they pack.
    with pytest.raises(TooManyCopies, match="convolutions on CPU train faster as separate programs") as e:
        check_packing_pays("cpu", conv=True, n=4)
    assert e.value.fit == 1
    check_packing_pays("gpu", conv=True, n=4)
    check_packing_pays("cpu", conv=False, n=4)


def test_a_killed_packed_sweep_resumes_to_the_same_results(cli, tmp_path, cache_dir):
    args = [
        "-m",
        "model=mlp",
        "dataset=wine",
        "data_seed=0",
        "trainer.steps=200",
        "trainer.eval_every=50",
        "trainer.log_every=50",
        "trainer.progress=false",
        "trainer.checkpoint.every_steps=50",
        "trainer.checkpoint.every_epochs=null",  # an epoch of wine is one step
        "trainer.checkpoint.min_interval_s=0",
        "trainer.checkpoint.async_save=false",
        "logger=none",
        "logger.console=false",
        "optimizer.lr=1e-3,3e-3",
    ]
    whole = cli(*args, f"hydra.sweep.dir={tmp_path / 'whole'}", check=True)
    assert whole.returncode == 0
    killed_dir = tmp_path / "killed"
    proc = start_cli([*args, f"hydra.sweep.dir={killed_dir}"], tmp_path, cache_dir)
    first = killed_dir / "1" / "checkpoints" / "50"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "0" / "summary.json").exists()  # killed mid-training
    cli(*args, f"hydra.sweep.dir={killed_dir}", check=True)
    for job in ("0", "1"):
        resumed, ref = (
            read_json(killed_dir / job / "summary.json"),
            read_json(tmp_path / "whole" / job / "summary.json"),
        )
        assert resumed["checkpoint"]["resumed_from_step"] >= 50
        assert resumed["test"] == ref["test"] and resumed["best"] == ref["best"], job  # bitwise


def test_optuna_batches_train_as_one_program_and_a_lagging_trial_is_pruned(cli, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    base = [
        "-m",
        *QUICK_MLP,
        "trainer.steps=8",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=pruning",
        "hydra.sweeper.batch=2",
        "hydra.sweeper.pruner.name=median",
        "hydra.sweeper.pruner.n_startup_trials=4",
    ]
    good = ["hydra.sweeper.n_trials=4", "optimizer.lr=interval(0.05, 0.1)", "model.dropout=interval(0.05, 0.5)"]
    cli(*base, *good, f"hydra.sweep.dir={tmp_path / 'good'}", check=True)
    packs = sorted(p.name for p in (tmp_path / "good" / "packs").glob("*.json"))
    assert packs == ["0.json", "2.json"]  # two batches of two trials, each one program
    assert sweep.collect([str(tmp_path / "good")]).height == 4
    # Learning rates 1000x smaller lag the first trials at every evaluation: the median pruner stops them.
    # Three trials: a batch of two trains packed, the third alone; each is pruned where it runs.
    slow = ["hydra.sweeper.n_trials=3", "optimizer.lr=interval(1e-5, 2e-5)", "model.dropout=interval(0.05, 0.5)"]
    proc = cli(*base, *slow, f"hydra.sweep.dir={tmp_path / 'slow'}", check=True)
    assert proc.returncode == 0  # a pruned trial is not a failure
    summaries = [read_json(tmp_path / "slow" / job / "summary.json") for job in ("0", "1", "2")]
    assert [s["status"] for s in summaries] == ["pruned"] * 3
    assert all(s["steps"] < 8 for s in summaries)
    with sqlite3.connect(tmp_path / "study.db") as db:
        states = [s for (s,) in db.execute("select state from trials order by number")]
    assert states == ["COMPLETE"] * 4 + ["PRUNED"] * 3
