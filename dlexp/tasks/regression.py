"""Regression: mean squared error on the standardized target; metrics in original units."""

from __future__ import annotations

from dataclasses import dataclass

from dlexp import metrics
from dlexp.tasks.base import Task


@dataclass(frozen=True, kw_only=True)
class Regression(Task):
    target_scale: tuple[float, float] = (0.0, 1.0)
    name = "regression"
    metric_names = ("loss", "mse", "rmse", "mae", "r2")

    def loss(self, pred, target):
        err = (pred.reshape(target.shape).astype("float32") - target) ** 2
        return err.reshape(err.shape[0], -1).mean(axis=1)  # per example, averaged over its outputs

    def sums(self, losses, pred, target, weights):
        return metrics.regression_sums(losses, pred, target, weights, self.target_scale)

    def finalize(self, sums):
        return metrics.regression_metrics(sums)
