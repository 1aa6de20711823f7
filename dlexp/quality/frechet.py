"""The Fréchet distance between two Gaussians fitted to feature sums, and the sums themselves.

Features are summed batch by batch on device (count, sum, sum of outer products) like every
other metric, so a split of any size is measured in the evaluation pass it already makes;
the host turns the sums into a mean and covariance and the two Gaussians into a distance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def feature_sums(features, probs, weights) -> dict:
    """Weighted sums of one batch: features [B, F], class probabilities [B, K], weights [B]."""
    w = weights.astype(jnp.float32)
    f = features.astype(jnp.float32)
    top = jnp.argmax(probs, axis=-1)
    return {
        "n": jnp.sum(w),
        "f": jnp.einsum("b,bf->f", w, f),
        "ff": jnp.einsum("b,bf,bg->fg", w, f, f),
        "confidence": jnp.sum(w * jnp.max(probs, axis=-1)),
        "classes": jnp.einsum("b,bk->k", w, jax.nn.one_hot(top, probs.shape[-1])),
    }


def gaussian(sums: dict) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64 from `feature_sums` added over a split."""
    n = max(float(sums["n"]), 1.0)
    mean = np.asarray(sums["f"], np.float64) / n
    cov = np.asarray(sums["ff"], np.float64) / n - np.outer(mean, mean)
    return mean, (cov + cov.T) / 2


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), with symmetric square roots
    (eigendecompositions: no complex round-off as with a general matrix square root)."""
    root1 = _psd_sqrt(cov1)
    inner = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(inner, 0.0, None))))
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def class_coverage(classes: np.ndarray) -> float:
    """Entropy (nats) of the predicted-class histogram: log K when every class is drawn
    equally, 0 when one class takes every sample (mode collapse)."""
    p = np.asarray(classes, np.float64)
    p = p / max(p.sum(), 1e-12)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
