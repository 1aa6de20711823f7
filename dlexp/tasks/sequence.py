"""Sequences. Classification over sequences is the classification task with a sequence
model (an RNN or a Transformer reads [time, features], or an image row by row).
Forecasting is regression on windows of a series (`dataset=series`, dlexp/data/series.py):
a window of `lookback` steps predicts the next `horizon` values. One-step forecasting
is plain regression; multi-step adds the error at each step ahead (`rmse/t+1`, ...)
so one sees how the forecast degrades with the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from dlexp import metrics
from dlexp.tasks.regression import Regression


@dataclass(frozen=True, kw_only=True)
class Forecasting(Regression):
    horizon: int = 1
    name = "forecasting"

    def sums(self, losses, pred, target, weights):
        out = super().sums(losses, pred, target, weights)
        err = (pred.reshape(target.shape) - target) * self.target_scale[1]
        out["se_ahead"] = jnp.sum(err**2 * weights[:, None], axis=0)  # [horizon]
        return out

    def finalize(self, sums):
        out = metrics.regression_metrics(sums)
        n = metrics.divisor(sums["count"])
        for k, se in enumerate(np.asarray(sums["se_ahead"], np.float64), start=1):
            out[f"rmse/t+{k}"] = float(np.sqrt(se / n))
        return out
