"""Two processes on this machine, joined by jax.distributed, train like one process with two devices,
and a two-process run killed with SIGKILL resumes bitwise from its Orbax checkpoint."""

import os
import socket
import subprocess
import sys
import time

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


def two_processes(run_dir, cwd, env) -> list[subprocess.Popen]:
    port = free_port()
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dlexp.train",
                *ARGS,
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


def finish(procs) -> None:
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]


@pytest.fixture(scope="module")
def env(cache_dir):
    out = {**os.environ, "DLEXP_CACHE": cache_dir, "PYTHONPATH": str(ROOT)}
    out.pop("XLA_FLAGS", None)
    return out


def test_two_processes_match_one_process_with_two_devices(tmp_path, env):
    finish(two_processes(tmp_path / "multi", tmp_path, env))
    multi = read_json(tmp_path / "multi" / "summary.json")
    assert multi["devices"] == 2

    one = subprocess.run(
        [sys.executable, "-m", "dlexp.train", *ARGS, f"hydra.run.dir={tmp_path / 'one'}"],
        cwd=tmp_path,
        env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    single = read_json(tmp_path / "one" / "summary.json")
    assert single["devices"] == 2
    assert multi["final"]["train"]["loss"] == pytest.approx(single["final"]["train"]["loss"], rel=1e-4)
    assert multi["test"]["accuracy"] == pytest.approx(single["test"]["accuracy"])
    info = read_json(tmp_path / "multi" / "run.json")
    assert {d["process"] for d in info["devices"]} == {0, 1}

    # The same two processes killed with SIGKILL after a checkpoint, then started again with the
    # same command: they resume from the checkpoint and end bitwise as the run above did.
    killed = tmp_path / "killed"
    procs = two_processes(killed, tmp_path, env)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "15").exists() and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.05)
    for p in procs:
        p.kill()
        p.wait()
    assert not (killed / "summary.json").exists()
    finish(two_processes(killed, tmp_path, env))
    resumed = read_json(killed / "summary.json")
    assert resumed["checkpoint"]["resumed_from_step"] >= 15
    for key in ("test", "best", "final"):
        assert resumed[key] == multi[key], key
