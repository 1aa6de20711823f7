"""Metrics as sums that accumulate on device, finalized to numbers on the host.

A jitted step returns sums (loss sum, example count, confusion matrix, ...) that
add across batches and devices; only at the logging cadence are they fetched and
turned into accuracy, F1, R2. Everything classification reports derives from the
confusion matrix, so the numbers agree with each other by construction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def classification_sums(losses, logits, labels, weights, num_classes: int) -> dict:
    pred = jnp.argmax(logits, axis=-1)
    true_1h = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * weights[:, None]
    pred_1h = jax.nn.one_hot(pred, num_classes, dtype=jnp.float32)
    return {
        "loss": jnp.sum(losses * weights),
        "count": jnp.sum(weights),
        "confusion": true_1h.T @ pred_1h,  # [true, predicted]
    }


def classification_metrics(sums: dict) -> dict[str, float]:
    cm = np.asarray(sums["confusion"], np.float64)
    n = max(float(sums["count"]), 1.0)
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0  # macro averages over the classes that occur
    return {
        "loss": float(sums["loss"]) / n,
        "accuracy": float(tp.sum()) / n,
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def regression_sums(losses, pred, target, weights, scale: tuple[float, float]) -> dict:
    """Sums in the target's original units (`scale` = the train mean and std used to standardize it)."""
    mean, std = scale
    p = pred.reshape(target.shape) * std + mean
    t = target * std + mean
    err = p - t
    return {
        "loss": jnp.sum(losses * weights),
        "count": jnp.sum(weights),
        "se": jnp.sum(err**2 * weights),
        "ae": jnp.sum(jnp.abs(err) * weights),
        "y": jnp.sum(t * weights),
        "y2": jnp.sum(t**2 * weights),
    }


def regression_metrics(sums: dict) -> dict[str, float]:
    n = max(float(sums["count"]), 1.0)
    mse = float(sums["se"]) / n
    var = float(sums["y2"]) / n - (float(sums["y"]) / n) ** 2
    return {
        "loss": float(sums["loss"]) / n,
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(sums["ae"]) / n,
        "r2": 1.0 - mse / var if var > 0 else float("nan"),
    }


def add_sums(a: dict, b: dict) -> dict:
    return jax.tree.map(jnp.add, a, b)
