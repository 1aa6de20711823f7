"""K-fold cross-validation: every row in exactly one fold, stratified shares, no leakage, CLI summary."""

import json

import numpy as np
import polars as pl

from dlexp.crossval import fold_datasets
from dlexp.data.splits import kfold
from dlexp.data.table import table


def test_kfold_covers_every_row_exactly_once():
    folds = kfold(103, 5, seed=0)
    rows = np.concatenate(folds)
    assert sorted(rows.tolist()) == list(range(103)) and sorted(len(f) for f in folds) == [20, 20, 21, 21, 21]


def test_stratified_kfold_keeps_class_shares():
    labels = np.array([0] * 80 + [1] * 20)
    folds = kfold(100, 4, seed=1, labels=labels)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    assert [int((labels[f] == 1).sum()) for f in folds] == [5, 5, 5, 5]


def test_fold_datasets_refit_on_their_own_train_rows(tmp_path):
    df = pl.DataFrame({"a": np.arange(60.0), "label": [0, 1, 2] * 20})
    df.write_parquet(tmp_path / "k.parquet")
    data = table(path=str(tmp_path / "k.parquet"), label="label", seed=0)
    folds = list(fold_datasets(data, 3, seed=0))
    pool = np.concatenate([data.rows["train"], data.rows["val"]])
    val_rows = np.concatenate([f.rows["val"] for f in folds])
    assert sorted(val_rows.tolist()) == sorted(pool.tolist())  # each pooled row validated exactly once
    for f in folds:
        assert not set(f.rows["train"]) & set(f.rows["val"]) and (f.rows["test"] == data.rows["test"]).all()
        # no leakage: the scaling is the mean of this fold's train rows (a == row id), not of val or test
        assert np.isclose(f.prep["stats"]["a"]["mean"], f.rows["train"].mean())


def test_cv_from_the_cli_reports_each_fold_and_the_mean(cli, tmp_path):
    out = cli(
        "dataset=wine",
        "model=mlp",
        "model.hidden=[8]",
        "trainer.cv.folds=3",
        "trainer.steps=3",
        "trainer.progress=false",
        "logger=jsonl",
        "trainer.checkpoint.enabled=false",
        f"hydra.run.dir={tmp_path}/run",
        check=True,
    )
    run_dir = tmp_path / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    per_fold = [f["objective"] for f in summary["cv"]["per_fold"]]
    assert len(per_fold) == 3 and np.isclose(summary["objective"]["value"], np.mean(per_fold))
    assert np.isclose(summary["objective"]["std"], np.std(per_fold))
    assert all((run_dir / f"fold_{i}" / "summary.json").exists() for i in range(3))

    # The console ends on the cross-validated result: each fold under its heading, then the
    # mean ± std table, then the objective's mean ± std and the parent run dir.
    err = out.stderr
    assert all(f"== fold {i} of 3" in err for i in range(3))
    tail = err[err.index("== cross-validation: 3 folds ==") :].splitlines()
    o, val, test = summary["objective"], summary["cv"]["val"], summary["cv"]["test"]
    assert tail[-1] == f"objective val/loss = {o['value']:.6g} ± {o['std']:.6g} over 3 folds  (run dir: {run_dir})"
    val_accuracy = f"{val['accuracy']['mean']:.4f} ± {val['accuracy']['std']:.4f}"
    test_loss = f"{test['loss']['mean']:.4f} ± {test['loss']['std']:.4f}"
    assert any(line.startswith("val (best)") and val_accuracy in line for line in tail)
    assert any(line.startswith("test") and test_loss in line for line in tail)
    for i, f in enumerate(summary["cv"]["per_fold"]):
        assert any(line.startswith(f"fold {i}") and f"{f['objective']:.4f}" in line for line in tail)

    # The report shows the folds and their mean ± std too.
    cli(str(run_dir), module="dlexp.report", check=True)
    report = (run_dir / "report" / "report.md").read_text()
    assert "## Cross-validation: 3 folds" in report and f"{o['value']:.6g} ± {o['std']:.6g}" in report
    assert f"{test['loss']['mean']:.4f} ± {test['loss']['std']:.4f}" in report
    assert all(f"| fold {i} |" in report for i in range(3))
