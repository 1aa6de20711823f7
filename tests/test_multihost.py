"""Two processes on this machine, joined by jax.distributed, each reading its own half of the data,
train exactly like one process with two devices and two data shards (resident and streamed), and
a two-process run killed with SIGKILL, or one of its processes sent SIGTERM, resumes bitwise from
its Orbax checkpoint."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest
from conftest import ROOT, read_json

ARGS = [
    "model=mlp",
    "model.dropout=0.0",
    "dataset=wine",
    "trainer.steps=90",
    "trainer.eval_every=30",
    "trainer.log_every=30",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "trainer.parallel=mesh",
    "trainer.checkpoint.every_steps=15",
    "trainer.checkpoint.every_epochs=null",
    "trainer.checkpoint.min_interval_s=0",
    "trainer.checkpoint.async_save=false",
    "logger=jsonl",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(run_dir, cwd, env, args=ARGS) -> list[subprocess.Popen]:
    port = free_port()
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dlexp.train",
                *args,
                f"hydra.run.dir={run_dir}",
                f"trainer.distributed.coordinator=127.0.0.1:{port}",
                "trainer.distributed.num_processes=2",
                f"trainer.distributed.process_id={i}",
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]


def wait_for_checkpoint(run_dir, step: int, procs) -> None:
    while not (run_dir / "checkpoints" / str(step)).exists():
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.05)


def finish(procs) -> None:
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]


@pytest.fixture(scope="module")
def env(cache_dir):
    out = {**os.environ, "DLEXP_CACHE": cache_dir, "PYTHONPATH": str(ROOT)}
    out.pop("XLA_FLAGS", None)
    return out


def one_process(run_dir, cwd, env, args=ARGS) -> dict:
    """The same run in one process with two devices, holding both data shards."""
    one = subprocess.run(
        [sys.executable, "-m", "dlexp.train", *args, "trainer.data_shards=2", f"hydra.run.dir={run_dir}"],
        cwd=cwd,
        env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    return read_json(run_dir / "summary.json")


def test_two_processes_match_one_process_with_two_devices(tmp_path, env):
    # The two uninterrupted runs do not save (checkpoints change no number); the interrupted one does.
    uninterrupted = [*ARGS, "trainer.checkpoint.enabled=false"]
    finish(two_processes(tmp_path / "multi", tmp_path, env, uninterrupted))
    multi = read_json(tmp_path / "multi" / "summary.json")
    assert multi["devices"] == 2
    single = one_process(tmp_path / "one", tmp_path, env, uninterrupted)
    assert single["devices"] == 2
    for key in ("test", "best", "final"):
        assert multi[key] == single[key], key
    info = read_json(tmp_path / "multi" / "run.json")
    assert {d["process"] for d in info["devices"]} == {0, 1}
    # wine's one file is cut into two row ranges: each process read its own half
    reads = [p["rows_read"] for p in multi["data"]["processes"]]
    assert reads == [89, 89] and single["data"]["processes"][0]["rows_read"] == 178

    # Preempted, then killed, then finished: SIGTERM to one process only (one host preempted)
    # stops both at the same step, saved, with exit 75; the same command resumes; SIGKILL after
    # its next checkpoint; the same command again ends bitwise as the uninterrupted run.
    run_dir = tmp_path / "interrupted"
    procs = two_processes(run_dir, tmp_path, env)
    wait_for_checkpoint(run_dir, 15, procs)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [75, 75], outs[0][1][-3000:]
    preempted = read_json(run_dir / "summary.json")
    assert preempted["status"] == "preempted"
    procs = two_processes(run_dir, tmp_path, env)
    wait_for_checkpoint(run_dir, preempted["steps"] + 15 - preempted["steps"] % 15, procs)
    for p in procs:
        p.kill()
        p.wait()
    finish(two_processes(run_dir, tmp_path, env))
    resumed = read_json(run_dir / "summary.json")
    assert resumed["checkpoint"]["resumed_from_step"] > preempted["steps"]
    for key in ("test", "best", "final"):
        assert resumed[key] == multi[key], key


def test_streamed_files_are_read_one_share_per_process(tmp_path, env):
    """Four Parquet files, streamed: each process reads two whole files, and the categories are
    the union of both processes' values (one colour is only in the second half)."""
    rng = np.random.default_rng(0)
    files = tmp_path / "data"
    files.mkdir()
    for i in range(4):
        x = rng.normal(size=(500, 6))
        colour = rng.choice(["red", "green"] + (["blue"] if i >= 2 else []), size=500)
        frame = pl.DataFrame(x, schema=[f"f{j}" for j in range(6)], orient="row")
        label = (x[:, 0] + (colour == "blue") > 0.3).astype(np.int32)
        frame.with_columns(colour=pl.Series(colour), label=pl.Series(label)).write_parquet(files / f"part{i}.parquet")
    args = [
        *ARGS[:2],
        "dataset=parquet",
        f"dataset.path={files}",
        "dataset.label=label",
        "+dataset.categorical=[colour]",
        "+dataset.stream=true",
        "trainer.steps=40",
        "trainer.eval_every=20",
        "trainer.log_every=20",
        "trainer.batch_size=32",
        "trainer.progress=false",
        "trainer.parallel=mesh",
        "trainer.checkpoint.enabled=false",
        "logger=jsonl",
    ]
    finish(two_processes(tmp_path / "multi", tmp_path, env, args))
    multi = read_json(tmp_path / "multi" / "summary.json")
    single = one_process(tmp_path / "one", tmp_path, env, args)
    for key in ("test", "best", "final"):
        assert multi[key] == single[key], key
    assert [p["rows_read"] for p in multi["data"]["processes"]] == [1000, 1000]
    prep = read_json(tmp_path / "multi" / "prep.json")
    assert prep["categories"]["colour"] == ["blue", "green", "red"]
    assert prep["source"]["streamed"] and prep["source"]["shards"]["bounds"] == [[0, 1000], [1000, 2000]]
