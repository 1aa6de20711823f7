"""`python -m dlexp.report`: PNGs and report.md for a run dir and for a sweep dir."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import read_json
from PIL import Image

from dlexp.errors import ConfigError
from dlexp.report import main, write_report
from dlexp.train import run

TINY = [
    "model=mlp",
    "model.hidden=[32]",
    "trainer.steps=16",
    "trainer.eval_every=8",
    "trainer.log_every=8",
    "trainer.progress=false",
    "logger.console=false",
]


def looks_like_a_plot(path) -> None:
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 10, path  # a real figure, not a blank


def test_run_report_has_curves_confusion_and_metrics(compose, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run(compose(TINY), str(run_dir))
    summary = read_json(run_dir / "summary.json")
    assert main([str(run_dir)]) == 0  # python -m dlexp.report <run dir>
    md_path = capsys.readouterr().out.strip().splitlines()[-1]
    assert md_path == str(run_dir / "report" / "report.md")
    md = open(md_path).read()
    assert "![learning curves](curves.png)" in md and "![confusion matrix](confusion.png)" in md
    assert f"| test | {summary['test']['loss']:.4g} | {summary['test']['accuracy']:.4g} |" in md
    for png in ("curves.png", "confusion.png"):
        looks_like_a_plot(run_dir / "report" / png)


def test_sweep_report_compares_jobs_by_each_swept_key(compose, tmp_path):
    sweep = tmp_path / "sweep"
    jobs = [
        ["optimizer.lr=0.001", "model.hidden=[16]"],
        ["optimizer.lr=0.03", "model.hidden=[16]"],
        ["optimizer.lr=0.03", "model.hidden=[32]"],
    ]
    values = []
    for i, overrides in enumerate(jobs):
        values.append(run(compose([*TINY, *overrides]), str(sweep / str(i)))[0])
        os.makedirs(sweep / str(i) / ".hydra")
        (sweep / str(i) / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))  # as Hydra
    with pytest.raises(ConfigError):  # a failed job: recorded in its summary.json, reported as failed
        run(compose([*TINY, "objective.metric=val/r2"]), str(sweep / "3"))
    os.makedirs(sweep / "3" / ".hydra")
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.1\n- model.hidden=[16]\n")

    md = open(write_report(str(sweep))).read()
    out = sweep / "report"
    assert "4 jobs (1 failed); objective val/loss (min); swept: optimizer.lr, model.hidden" in md
    best = int(np.argmin(values))
    assert f"best: job `{best}` with val/loss = {values[best]:.6g}" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| job")]
    assert [line.split(" | ")[0] for line in table] == ["| " + str(i) for i in np.argsort(values)] + ["| 3"]
    assert "failed" in table[-1]
    for png in ("val_loss_vs_optimizer.lr.png", "val_loss_vs_model.hidden.png", "curves.png"):
        assert f"]({png})" in md
        looks_like_a_plot(out / png)


def test_a_dir_without_runs_is_one_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "is neither a run dir (no summary.json) nor a sweep dir (no jobs under it)" in capsys.readouterr().err
