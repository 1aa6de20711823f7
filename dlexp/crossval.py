"""K-fold cross-validation: K models, each fold's scores, and their mean and std.

The test split stays as the data set made it; the train and val rows are pooled and
cut into K folds (stratified by class for classification). Fold i trains on the
other folds and validates on fold i, with the preparation refitted on its own train
rows, in its own sub-run dir `fold_<i>/`. The objective a sweeper sees is the mean.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dlexp.config import CVConfig, TrainConfig
from dlexp.data.dataset import Dataset
from dlexp.data.splits import kfold
from dlexp.errors import ConfigError


def fold_datasets(data: Dataset, k: int, seed: int) -> Iterator[Dataset]:
    """The K data sets of K-fold CV over the pooled train + val rows."""
    if data.resplit is None or data.rows is None:
        raise ConfigError(
            f"trainer.cv.folds={k}: this data set cannot be re-split (a streamed train split, time-series windows, "
            "or a dataset._target_ that does not come from dlexp.data.table); set trainer.cv.folds=null"
        )
    pool = np.concatenate([data.rows["train"], data.rows["val"]])
    labels = data.row_labels[pool] if data.task == "classification" and data.row_labels is not None else None
    for fold in kfold(len(pool), k, seed, labels):
        held = np.zeros(len(pool), bool)
        held[fold] = True
        yield data.resplit({"train": np.sort(pool[~held]), "val": np.sort(pool[held]), "test": data.rows["test"]})


def fit_folds(cfg: TrainConfig, run_dir: str, data: Dataset, run_one: Callable, writers: Any) -> dict[str, Any]:
    """Trains one model per fold with `run_one(cfg, fold_dir, data)` and summarizes them."""
    k = int(cfg.trainer.cv.folds or 0)
    fold_cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, cv=CVConfig(folds=None)))
    folds = []
    for i, fold_data in enumerate(fold_datasets(data, k, cfg.seed)):
        if cfg.logger.console:  # each fold prints its own table under this heading
            print(f"\n== fold {i} of {k}: {fold_data.sizes()} ==", file=sys.stderr)
        value, summary = run_one(fold_cfg, os.path.join(run_dir, f"fold_{i}"), fold_data)
        folds.append(
            {
                "fold": i,
                "objective": value,
                "val": summary["best"]["val"],
                "test": summary["test"],
                "sizes": fold_data.sizes(),
                "run_dir": f"fold_{i}",
            }
        )
        writers.scalars(
            i,
            {
                "cv/objective": value,
                **{f"cv/val/{m}": v for m, v in summary["best"]["val"].items()},
                **{f"cv/test/{m}": v for m, v in summary["test"].items()},
            },
        )
    stats = {part: mean_std([f[part] for f in folds]) for part in ("val", "test")}
    objective = mean_std([{"objective": f["objective"]} for f in folds])["objective"]
    writers.scalars(
        k, {f"cv/{part}_{s}/{m}": ms[s] for part, by in stats.items() for m, ms in by.items() for s in ("mean", "std")}
    )
    writers.text(
        "cv",
        "\n".join(f"fold {f['fold']}: objective {f['objective']:.6g}, sizes {f['sizes']}" for f in folds)
        + f"\nmean {objective['mean']:.6g} +- {objective['std']:.6g}",
    )
    status = "completed" if all(math.isfinite(f["objective"] or math.nan) for f in folds) else "failed"
    return {
        "status": status,
        "objective": {
            "metric": cfg.objective.metric,
            "mode": cfg.objective.mode,
            "value": objective["mean"],
            "std": objective["std"],
        },
        "cv": {"folds": k, "per_fold": folds, "val": stats["val"], "test": stats["test"]},
        "best": {"val": {m: v["mean"] for m, v in stats["val"].items()}},
        "test": {m: v["mean"] for m, v in stats["test"].items()},
    }


def mean_std(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {mean, std}} over the numeric entries the rows share (population std)."""
    keys = [m for m in rows[0] if all(isinstance(r.get(m), (int, float)) for r in rows)]
    return {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))} for m in keys}


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a table shows: not the per-class ones (`f1/<class>`)."""
    return {k: v for k, v in metrics.items() if "/" not in k}


def fold_rows(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per fold: its best val and test headline metrics (and the objective, where it is
    not one of the val metrics)."""
    metric = summary["objective"]["metric"]
    own = {} if metric.startswith("val/") else {metric: None}
    return {
        f"fold {f['fold']}": {
            **{k: f["objective"] for k in own},
            **{f"val {m}": v for m, v in headline(f["val"]).items()},
            **{f"test {m}": v for m, v in headline(f["test"]).items()},
        }
        for f in summary["cv"]["per_fold"]
    }


def mean_std_rows(summary: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Best val and test, each headline metric as "mean ± std" over the folds."""
    return {
        split: {m: f"{ms['mean']:.4f} ± {ms['std']:.4f}" for m, ms in headline(summary["cv"][part]).items()}
        for split, part in (("val (best)", "val"), ("test", "test"))
    }
