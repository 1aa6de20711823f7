"""The real `tensorboard` server over a tiny real sweep: what its HTTP API returns.

One multirun of four jobs (the CLI in a subprocess), then TensorBoard on 127.0.0.1 on
a free port: runs named by their swept values, the tag layout, scalar values, histograms,
the projector, the custom-scalars chart, and the HParams experiment and session groups,
checked against what each job wrote to summary.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from conftest import read_json
from services import free_port
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from dlexp.inspection.events import scalars_table

LRS, DROPOUTS = (0.001, 0.01), (0.0, 0.2)
# run name -> (job number, optimizer.lr, model.dropout): Hydra numbers a grid's jobs in this order
JOBS = {
    f"optimizer.lr={lr},model.dropout={d}": (num, lr, d)
    for num, (lr, d) in enumerate((lr, d) for lr in LRS for d in DROPOUTS)
}


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


def session_hparams(event_dir) -> dict:
    acc = EventAccumulator(str(event_dir), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    return dict(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams)


def test_tensorboard_serves_runs_scalars_histograms_projector_and_hparams(cli, tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli(
        "-m",
        "model=mlp",
        "model.hidden=[32]",
        f"optimizer.lr={','.join(map(str, LRS))}",
        f"model.dropout={','.join(map(str, DROPOUTS))}",
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
    assert printed.count("head.kernel") == 4 and "total" in printed  # each job prints its model summary at start
    for run, (num, lr, dropout) in JOBS.items():  # each job's run is <sweep>/tb/<its swept values>
        assert read_json(sweep / str(num) / "run.json")["tensorboard"] == str(sweep / "tb" / run)
        hp = session_hparams(sweep / "tb" / run)  # typed: numbers are numbers
        assert (hp["optimizer.lr"].number_value, hp["model.dropout"].number_value) == (lr, dropout)
        assert hp["model.hidden"].string_value == "[32]"  # a constant override: recorded, not an axis

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(sweep / "tb"),
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
                "optimizer/grad_norm",
                "optimizer/update_ratio",
                "optimizer/lr",
                "throughput/samples_per_s",
                "val/loss",
                "val_per_class/f1/7",
                "test/accuracy",
                "val_best/loss",
            } <= set(tags[run])
            assert sorted({t.split("/")[0] for t in tags[run]})[0] != "val_best"  # not the first group
        exported = scalars_table(str(sweep / "tb"))
        for run in JOBS:
            q = urllib.parse.urlencode({"run": run, "tag": "val/loss"})
            points = http_json(base, f"/data/plugin/scalars/scalars?{q}")  # [[wall_time, step, value], ...]
            assert [p[1] for p in points] == [8, 16]
            mine = exported.filter((exported["run"] == run) & (exported["tag"] == "val/loss")).sort("step")
            assert [p[2] for p in points] == pytest.approx(mine["value"].to_list())  # tb_export reads the same

        hist = http_json(base, "/data/plugin/histograms/tags")
        first = next(iter(JOBS))
        assert {"params/body/layers/0/kernel", "grads/head/kernel"} <= set(hist[first])

        assert set(JOBS) <= set(http_json(base, "/data/plugin/projector/runs"))
        info = http_json(base, "/data/plugin/projector/info?" + urllib.parse.urlencode({"run": first}))
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
            num, lr, dropout = JOBS[g["name"]]
            assert (g["hparams"]["optimizer.lr"], g["hparams"]["model.dropout"]) == (lr, dropout)
            assert g["hparams"]["model"] == "mlp"
            metrics = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}
            summary = read_json(sweep / str(num) / "summary.json")
            assert metrics["test/accuracy"] == pytest.approx(summary["test"]["accuracy"], rel=1e-6)
            assert metrics["val_best/loss"] == pytest.approx(summary["best"]["val"]["loss"], rel=1e-6)
        # The swept keys are the only hyperparameter columns, numeric and marked as differing;
        # the objective is the first metric column, and no column is per class.
        experiment = http_json(base, "/data/plugin/hparams/experiment", {"experimentName": ""})
        infos = {h["name"]: h for h in experiment["hparamInfos"]}
        assert set(infos) == {"optimizer.lr", "model.dropout"}
        assert all(h["type"] == "DATA_TYPE_FLOAT64" and h["differs"] for h in infos.values())
        metric_tags = [m["name"]["tag"] for m in experiment["metricInfos"]]
        assert metric_tags[:2] == ["val_best/loss", "test/loss"] and "test/accuracy" in metric_tags
        assert not [t for t in metric_tags if "per_class" in t]

        layout = http_json(base, "/data/plugin/custom_scalars/layout")
        (chart,) = layout["category"][0]["chart"]
        assert chart["multiline"]["tag"] == ["^train/loss$", "^val/loss$"]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
