"""trainer.nan_policy=skip in-process on tiny runs: a bad batch is skipped and the run goes on;
a run that skipping cannot save fails with one clear message; what reads a diverged run
(plots, evaluate) warns instead of crashing."""

import logging
import math

import numpy as np
import polars as pl
import pytest
from conftest import CHECKPOINTED_MLP, read_json

from dlexp.checkpoint import saved_steps
from dlexp.errors import TrainingError
from dlexp.train import run

TINY = CHECKPOINTED_MLP
BLOW_UP = ["dataset=wine", "optimizer=sgd", "optimizer.lr=1e6", "optimizer.momentum=null", "trainer.nan_policy=skip"]


def outlier_csv(tmp_path) -> list[str]:
    """A data set with one train row so large (3e38, unscaled) that the loss of its batch overflows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    x[3] = 3e38
    split = ["train"] * 200 + ["val"] * 50 + ["test"] * 50
    path = tmp_path / "outlier.csv"
    pl.DataFrame({**{f"f{i}": x[:, i] for i in range(4)}, "label": y, "split": split}).write_csv(path)
    return [
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.label=label",
        "dataset.split=column",
        "+dataset.split_column=split",
        "dataset.scale=none",
    ]


def test_skip_skips_the_bad_batch_and_the_run_completes(compose, tmp_path):
    data = outlier_csv(tmp_path)
    _, s = run(compose([*TINY, *data, "trainer.steps=40", "trainer.nan_policy=skip"]), str(tmp_path / "skip"))
    epochs = math.ceil(40 / 7)  # 200 train rows in batches of 32: 7 steps an epoch, the bad row in one of them
    assert s["status"] == "completed" and s["skipped_steps"] == epochs
    assert math.isfinite(s["objective"]["value"]) and s["test"]["accuracy"] > 0.6  # it learned
    with pytest.raises(TrainingError, match="the train loss became .* between steps 0 and 6"):
        run(compose([*TINY, *data, "trainer.steps=40"]), str(tmp_path / "stop"))  # the stop policy ends it


def test_skip_fails_a_run_whose_val_loss_is_never_finite(compose, tmp_path, caplog):
    from dlexp.evaluate import evaluate, load_run

    cfg = compose([*TINY, *BLOW_UP, "trainer.steps=60"])
    with pytest.raises(
        TrainingError,
        match=r"the val loss was not finite at any of 3 evaluation\(s\) up to step 18 "
        r"\(\d+ train step\(s\) skipped .*lower optimizer.lr",
    ):
        run(cfg, str(tmp_path / "r"))
    summary = read_json(tmp_path / "r" / "summary.json")
    assert summary["status"] == "failed" and summary["error_type"] == "TrainingError"
    assert saved_steps(tmp_path / "r") == [6, 12]  # saved before it failed: finite, but never a finite val loss

    # evaluate: no "step -1", but a warning that the run never had a best evaluation
    (tmp_path / "r" / ".hydra").mkdir()
    (tmp_path / "r" / ".hydra" / "config.yaml").write_text(__import__("omegaconf").OmegaConf.to_yaml(cfg))
    with caplog.at_level(logging.WARNING, logger="dlexp"):
        result = evaluate(load_run(str(tmp_path / "r")))
    assert result["step"] == 12
    assert "never had a finite val/loss" in caplog.text and "no best evaluation" in caplog.text


def test_a_short_run_with_no_finite_val_loss_fails_at_its_end(compose, tmp_path):
    with pytest.raises(TrainingError, match=r"not finite at any of 2 evaluation\(s\) up to step 12"):
        run(compose([*TINY, *BLOW_UP, "trainer.steps=12"]), str(tmp_path / "r"))
    assert read_json(tmp_path / "r" / "summary.json")["status"] == "failed"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # the lr itself, as a float32 constant
def test_skip_fails_a_run_whose_state_turns_nonfinite(compose, tmp_path):
    # lr beyond float32: the first update, from a finite loss and gradient, leaves inf and NaN in the params
    overflow = [
        "dataset=wine",
        "optimizer=sgd",
        "optimizer.lr=1e39",
        "optimizer.momentum=null",
        "trainer.nan_policy=skip",
    ]
    with pytest.raises(
        TrainingError,
        match=r"the train state \(parameters or optimizer\) held a non-finite value "
        r"at step 6 although \d+ non-finite step\(s\) were skipped",
    ):
        run(compose([*TINY, *overflow, "trainer.steps=12"]), str(tmp_path / "r"))
    assert saved_steps(tmp_path / "r") == []  # nothing non-finite was saved


def test_copies_whose_val_loss_is_never_finite_fail_the_run(compose, tmp_path):
    with pytest.raises(TrainingError, match="every copy failed; seed_0: the val loss was not finite"):
        run(
            compose([*TINY, *BLOW_UP, "trainer.steps=24", "trainer.seeds=[0,1]", "trainer.checkpoint.enabled=false"]),
            str(tmp_path / "r"),
        )


def test_the_never_finite_rule():
    from dlexp.loop.guards import NEVER_FINITE_EVALS, val_never_finite

    streak = [False, 0, 0]
    assert [val_never_finite(streak, float("nan"), s) for s in (6, 12, 18)] == [False, False, True]
    assert streak == [False, NEVER_FINITE_EVALS, 18]
    streak = [False, 0, 0]
    assert not val_never_finite(streak, 0.5, 6) and streak == [True, 0, 6]
    assert not any(val_never_finite(streak, float("inf"), s) for s in range(5))  # finite once: skip may recover


def test_plots_skip_nonfinite_outputs_with_a_warning(monkeypatch, caplog):
    from types import SimpleNamespace

    from dlexp.hooks import plots as hooks
    from dlexp.plots import roc_figure

    labels = np.array([0, 1, 0, 1, 1, 0])
    scores = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, np.nan], [0.0, 3.0], [0.0, np.inf], [0.0, -1.0]])
    assert roc_figure(labels, scores, [0, 1]).ndim == 3  # non-finite rows are left out, not a crash

    images = {}
    writers = SimpleNamespace(image=lambda tag, img, step: images.setdefault(tag, img))
    data = SimpleNamespace(
        x={"test": np.zeros((6, 3), np.float32)}, y={"test": labels}, sample_weights=lambda split: None
    )
    ctx = SimpleNamespace(
        task=SimpleNamespace(name="classification", classes=[0, 1]), data=data, model=None, writers=writers
    )
    monkeypatch.setattr(hooks, "make_predict", lambda model: lambda p, r, x: x)
    monkeypatch.setattr(hooks, "predict_all", lambda fn, params, rest, x: np.full((len(x), 2), np.nan, np.float32))
    with caplog.at_level(logging.WARNING, logger="dlexp"):
        hooks.ClassificationPlots().on_end(ctx, SimpleNamespace(best_state=(None, None), step=6), {})
    assert list(images) == ["plots/confusion_matrix"]
    assert "plots/roc: not drawn, 12 of 12 model outputs are not finite" in caplog.text
