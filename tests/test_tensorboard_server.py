"""The real `tensorboard` server over a tiny real sweep: what its HTTP API returns.

One multirun of two jobs (the CLI in a subprocess), then TensorBoard on 127.0.0.1 on
a free port: runs, scalar tags and values, histograms, the projector, and the HParams
session groups, checked against what each job wrote to summary.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from conftest import read_json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from dlexp.inspection.events import scalars_table

JOBS = {"0/tb": "0.001", "1/tb": "0.01"}  # run name -> the swept optimizer.lr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(base: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def wait_for_runs(base: str, proc: subprocess.Popen, expected: set[str], tries: int = 120) -> list[str]:
    """Polls /data/runs until every expected run is loaded (TensorBoard loads in the background)."""
    runs: list[str] = []
    for _ in range(tries):
        if proc.poll() is not None:
            raise AssertionError(f"tensorboard exited with {proc.returncode}")
        try:
            runs = http_json(base, "/data/runs")
            if expected <= set(runs):
                return runs
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise AssertionError(f"tensorboard did not list {sorted(expected)} (last: {runs})")


def session_hparams(job_dir) -> dict:
    acc = EventAccumulator(os.path.join(job_dir, "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    return dict(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams)


def test_tensorboard_serves_runs_scalars_histograms_projector_and_hparams(cli, tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli(
        "-m",
        "model=mlp",
        "model.hidden=[32]",
        f"optimizer.lr={','.join(JOBS.values())}",
        "trainer.steps=16",
        "trainer.eval_every=8",
        "trainer.log_every=8",
        "trainer.progress=false",
        "logger.histograms_every=8",
        "logger.embeddings=true",
        "logger.embedding_samples=40",
        f"hydra.sweep.dir={sweep}",
        check=True,
    )
    printed = proc.stdout + proc.stderr
    assert printed.count("head.kernel") == 2 and "total" in printed  # each job prints its model summary at start
    for run, lr in JOBS.items():  # each job holds its own hparams session in its own tb/
        assert session_hparams(sweep / run.split("/")[0])["optimizer.lr"].string_value == lr

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(sweep),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert sorted(wait_for_runs(base, proc, set(JOBS))) == sorted(JOBS)

        tags = http_json(base, "/data/plugin/scalars/tags")
        for run in JOBS:
            assert {
                "train/loss",
                "train/grad_norm",
                "train/update_ratio",
                "val/loss",
                "test/accuracy",
                "best/val/loss",
            } <= set(tags[run])
        exported = scalars_table(str(sweep))
        for run in JOBS:
            q = urllib.parse.urlencode({"run": run, "tag": "val/loss"})
            points = http_json(base, f"/data/plugin/scalars/scalars?{q}")  # [[wall_time, step, value], ...]
            assert [p[1] for p in points] == [8, 16]
            mine = exported.filter((exported["run"] == run) & (exported["tag"] == "val/loss")).sort("step")
            assert [p[2] for p in points] == pytest.approx(mine["value"].to_list())  # tb_export reads the same

        hist = http_json(base, "/data/plugin/histograms/tags")
        assert {"params/body/layers/0/kernel", "grads/head/kernel"} <= set(hist["0/tb"])

        assert set(JOBS) <= set(http_json(base, "/data/plugin/projector/runs"))
        info = http_json(base, "/data/plugin/projector/info?" + urllib.parse.urlencode({"run": "0/tb"}))
        (emb,) = info["embeddings"]
        assert emb["tensorShape"] == [40, 32]  # 40 val samples x the 32 features before the head
        assert emb["metadataPath"] and emb["sprite"]["singleImageDim"] == [8, 8]

        request = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_RUNNING"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 10,
            "includeMetrics": True,
        }
        groups = http_json(base, "/data/plugin/hparams/session_groups", request)["sessionGroups"]
        assert sorted(g["name"] for g in groups) == sorted(JOBS)
        for g in groups:
            job = sweep / g["name"].split("/")[0]
            assert g["hparams"]["optimizer.lr"] == JOBS[g["name"]] and g["hparams"]["model"] == "mlp"
            metrics = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}
            summary = read_json(job / "summary.json")
            assert metrics["test/accuracy"] == pytest.approx(summary["test"]["accuracy"], rel=1e-6)
            assert metrics["best/val/loss"] == pytest.approx(summary["best"]["val"]["loss"], rel=1e-6)
        experiment = http_json(base, "/data/plugin/hparams/experiment", {"experimentName": ""})
        assert "optimizer.lr" in {h["name"] for h in experiment["hparamInfos"]}
        assert {"test/accuracy", "best/val/f1"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
