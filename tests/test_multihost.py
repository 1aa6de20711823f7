"""Two processes on this machine, joined by jax.distributed, train like one process with two devices."""

import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, read_json

ARGS = [
    "model=mlp",
    "model.dropout=0.0",
    "dataset=wine",
    "trainer.steps=6",
    "trainer.eval_every=3",
    "trainer.log_every=3",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "trainer.parallel=mesh",
    "trainer.checkpoint.enabled=false",
    "logger=jsonl",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_with_two_devices(tmp_path, cache_dir):
    env = {**os.environ, "DLEXP_CACHE": cache_dir, "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dlexp.train",
                *ARGS,
                f"hydra.run.dir={tmp_path / 'multi'}",
                f"trainer.distributed.coordinator=127.0.0.1:{port}",
                "trainer.distributed.num_processes=2",
                f"trainer.distributed.process_id={i}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
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
