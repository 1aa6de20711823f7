"""Fitting a run's tasks to its data: a VAE's likelihood, and a judge for generated samples."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from dlexp.config import ObjectiveConfig, QualityConfig
from dlexp.data.dataset import Dataset
from dlexp.errors import ConfigError
from dlexp.quality.judge import load_judge, train_judge, usable
from dlexp.quality.metrics import QUALITY_METRICS
from dlexp.tasks.base import Task

log = logging.getLogger("dlexp")


def fit_to_data(
    tasks: list[Task],
    quality: QualityConfig,
    data: Dataset,
    seed: int,
    objective_cfg: ObjectiveConfig,
    cache_dir: str | None = None,
) -> tuple[list[Task], dict[str, Any]]:
    """The tasks fitted to `data`, and what summary.json records of the judge (if any).

    A GAN with a judge left at the default objective (val/loss, the sum of two losses that
    say nothing of the samples) is judged by val/fid instead: that entry is "objective"."""
    tasks = [t.for_data(data.prep.get("scale")) for t in tasks]
    objective = str(objective_cfg.metric)
    needs_judge = objective.partition("/")[2] in QUALITY_METRICS
    if not _generates(tasks[0]):
        if needs_judge:
            raise ConfigError(f"objective.metric={objective} measures generated samples; this run is {tasks[0].name}")
        return tasks, {}
    why = "quality.judge=off" if quality.judge == "off" else usable(data)
    if why is not None:
        if needs_judge:
            raise ConfigError(f"objective.metric={objective} needs a judge of the samples, which {why} rules out")
        log.info("sample quality: not measured, since %s", why)
        return tasks, {}
    if quality.judge == "auto":
        judge = train_judge(data, seed, quality.judge_steps, cache_dir)
    else:
        judge = load_judge(quality.judge, data)
    judged: dict[str, Any] = {"judge": judge.source, "judge_val_accuracy": judge.accuracy}
    if tasks[0].name == "gan" and objective == "val/loss" and str(objective_cfg.mode) == "min":
        log.info("objective: val/fid (min), the judge's distance of the samples (set objective.metric to choose)")
        judged["objective"] = ("val/fid", "min")
    return [replace(t, judge=judge) for t in tasks], judged


def _generates(task: Task) -> bool:
    """Whether the task makes samples a judge can measure: a GAN, or a VAE (its prior)."""
    return hasattr(task, "judge") and (task.name == "gan" or bool(getattr(task, "variational", False)))
