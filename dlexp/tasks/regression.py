"""Regression: mean squared error on the standardized target; metrics in original units."""

from __future__ import annotations

from dataclasses import dataclass

from dlexp import metrics
from dlexp.tasks.base import Task


@dataclass(frozen=True)
class Regression(Task):
    target_scale: tuple[float, float] = (0.0, 1.0)
    metric_names = ("loss", "mse", "rmse", "mae", "r2")
    name: str = "regression"

    def loss(self, pred, target):
        return (pred.reshape(target.shape).astype("float32") - target) ** 2

    def sums(self, losses, pred, target, weights):
        return metrics.regression_sums(losses, pred, target, weights, self.target_scale)

    def finalize(self, sums):
        return metrics.regression_metrics(sums)
