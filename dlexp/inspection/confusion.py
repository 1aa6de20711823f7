"""The test confusion matrix of the best state, into summary.json.

The trainer's evaluation returns finished metrics only; the report (and anyone reading
summary.json) wants the matrix behind them. This hook runs the task's own eval step
over the test split once more and keeps its `confusion` sums, so the matrix agrees
with the test accuracy and F1 by construction (with dataset.weight: summed sample
weights, as the metrics weigh them, rather than row counts).
"""

from __future__ import annotations

import jax
import numpy as np

CHUNK = 256  # one compiled shape: the last chunk is padded with zero-weight rows


def confusion_matrix(
    eval_step, params, rest, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray | None:
    """[true, predicted] counts (or summed sample `weights`) from the task's eval sums; None
    if the task has no confusion."""
    step = jax.jit(eval_step)
    total = None
    for start in range(0, len(x), CHUNK):
        xb, yb = x[start : start + CHUNK], y[start : start + CHUNK]
        pad = CHUNK - len(xb)
        wb = np.ones(len(xb), np.float32) if weights is None else weights[start : start + CHUNK]
        w = np.concatenate([wb, np.zeros(pad, np.float32)])
        xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
        yb = np.concatenate([yb, np.zeros((pad, *yb.shape[1:]), yb.dtype)])
        sums = step(params, rest, xb, yb, w)
        if "confusion" not in sums:
            return None
        cm = np.asarray(jax.device_get(sums["confusion"]))
        total = cm if total is None else total + cm
    return total
