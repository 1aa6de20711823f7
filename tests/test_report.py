"""`python -m dlexp.report`: PNGs and report.md for a run dir and for a sweep dir."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import read_json
from PIL import Image

from dlexp.errors import ConfigError
from dlexp.figures.classification import MANY, confusion
from dlexp.figures.style import render
from dlexp.figures.sweeps import metric_vs_hparam, short_labels
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


# ---------------------------------------------------------------------------- figures (no training)

CM = np.array([[30, 0, 2], [0, 25, 0], [1, 0, 27]])


def test_the_confusion_matrix_has_a_title_a_colorbar_and_blank_zeros():
    ax = confusion(CM, ["cat", "dog", "eel"]).axes[0]
    assert ax.get_title() == f"test confusion matrix, accuracy {82 / 85:.3f}"
    assert ax.images[0].colorbar is not None and ax.images[0].colorbar.ax.get_ylabel() == "count"
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in CM.ravel() if v)  # integers, no "0"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "eel"]

    ax = confusion(CM, ["cat", "dog", "eel"], normalize=True).axes[0]
    assert {"0.94", "1.00", "0.96"} <= {t.get_text() for t in ax.texts} and len(ax.texts) == 5  # recall by row

    n = 40
    ax = confusion(np.eye(n) * 5 + 1, list(range(n))).axes[0]
    assert not ax.texts and len(ax.get_xticklabels()) <= MANY  # many classes: no cell text, thinned ticks


def test_the_tensorboard_image_and_the_report_png_are_one_figure(tmp_path, monkeypatch):
    """The same matrix through the classification hook and through `dlexp.report`: the same pixels."""
    from dlexp.hooks import plots as hooks

    y = np.repeat(np.arange(3), CM.sum(1))
    pred = np.concatenate([np.repeat(np.arange(3), row) for row in CM])
    images = {}
    ctx = SimpleNamespace(
        task=SimpleNamespace(name="classification", classes=[0, 1, 2]),
        data=SimpleNamespace(
            x={"test": np.zeros((len(y), 3), np.float32)}, y={"test": y}, sample_weights=lambda s: None
        ),
        model=None,
        writers=SimpleNamespace(image=lambda tag, img, step: images.setdefault(tag, img)),
    )
    monkeypatch.setattr(hooks, "make_predict", lambda model: lambda p, r, x: x)
    monkeypatch.setattr(hooks, "predict_all", lambda fn, params, rest, x: np.eye(3, dtype=np.float32)[pred])
    hooks.ClassificationPlots().on_end(ctx, SimpleNamespace(best_state=(None, None), step=1), {})

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    confusion_entry = {"split": "test", "classes": [0, 1, 2], "matrix": CM.tolist()}
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "confusion": confusion_entry}))
    write_report(str(run_dir))
    png = np.asarray(Image.open(run_dir / "report" / "confusion.png").convert("RGB"))
    assert png.shape == images["plots/confusion_matrix"].shape
    assert np.array_equal(png, images["plots/confusion_matrix"])


@pytest.mark.parametrize(
    "values, log",
    [
        ([1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], True),
        ([1e-4, 1e-3, 1e-2], True),
        ([0.003, 0.01, 0.03], False),  # one decade: on a log axis its minor ticks' labels ran together
        ([1e-3, 2e-3, 5e-3, 1e-2, 3e-2], False),
        ([16, 32, 64, 128, 256, 512, 1024, 2048], True),
    ],
)
def test_a_sweep_axis_is_log_over_two_decades_and_its_tick_labels_do_not_overlap(values, log):
    groups = ["model.hidden=[16]"] * len(values)
    fig = metric_vs_hparam(
        values, np.linspace(1, 0, len(values)), hparam="optimizer.lr", metric="val/loss", best=0, groups=groups
    )
    render(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == ("log" if log else "linear")
    left, right = ax.get_xlim()
    labels = [
        t
        for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]
        if t.get_visible() and t.get_text() and min(left, right) <= t.get_position()[0] <= max(left, right)
    ]
    assert len(labels) >= 3
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]


def test_legend_labels_drop_key_prefixes_only_when_unambiguous():
    assert short_labels(["optimizer.lr=0.001 model.hidden=[16]"]) == ["lr=0.001 hidden=[16]"]
    assert short_labels(["a.lr=1 b.lr=2"]) == ["a.lr=1 b.lr=2"]
