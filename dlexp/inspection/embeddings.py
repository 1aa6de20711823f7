"""Penultimate-layer features of validation samples, for TensorBoard's projector.

Which features: a model that defines `features(x)` (the part of `__call__` before the
output layer, so that `__call__(x) == head(features(x))`; every built-in classifier and
regressor does) gives those; any other model gives its outputs (logits), which the
projector shows just as well, only with fewer dimensions. At the end of a run the hook
embeds a seeded sample of the val split through the best state and writes, under the
run's tb/ dir:

  tensors.tsv    one feature row per sample
  metadata.tsv   label, predicted, correct (regression: target, prediction, abs_error;
                 other tasks: the data's label)
  sprite.png     the sample images, for image data
"""

from __future__ import annotations

import logging
import math

import numpy as np
from flax import nnx

from dlexp.tasks import Classification, Regression

log = logging.getLogger("dlexp")
TAG = "val_features"


def features_and_outputs(graphdef, params, rest, x):
    """Pure: (penultimate features, outputs) in eval mode; features = outputs without `features`."""
    model = nnx.merge(graphdef, params, rest)
    out = model(x)
    feats = model.features(x) if callable(getattr(model, "features", None)) else out
    return feats.reshape(feats.shape[0], -1), out


def sample_indices(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, min(k, n), replace=False))


def metadata_rows(task, y: np.ndarray, out: np.ndarray, classes, target_scale) -> tuple[list[str], list[list]]:
    """(header, rows): what the projector can colour and search points by."""
    if isinstance(task, Classification):
        names = list(classes) if classes else list(range(out.shape[-1]))
        pred = out.argmax(-1)
        return ["label", "predicted", "correct"], [[names[t], names[p], bool(t == p)] for t, p in zip(y, pred)]
    if isinstance(task, Regression):
        mean, std = target_scale
        target, prediction = y * std + mean, out.reshape(y.shape) * std + mean
        if y.ndim == 1:
            return ["target", "prediction", "abs_error"], [
                [f"{t:.4g}", f"{p:.4g}", f"{abs(t - p):.4g}"] for t, p in zip(target, prediction)
            ]
        err = np.abs(target - prediction).reshape(len(y), -1).mean(1)  # several outputs (a forecast horizon)
        return ["mean_abs_error"], [[f"{e:.4g}"] for e in err]
    labels = [classes[t] for t in y] if classes and y.ndim == 1 else [str(t) for t in y.reshape(len(y), -1)[:, 0]]
    return ["label"], [[v] for v in labels]  # other tasks (GAN, autoencoder): the data's own label


def sprite_images(x: np.ndarray, prep: dict) -> np.ndarray | None:
    """Images as NCHW in [0, 1], padded square (the projector's rule); None for non-image data."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        return None
    x = unscale(x, prep)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    x = (x - lo) / np.maximum(hi - lo, 1e-12)  # each image to the full grey range
    n, h, w, c = x.shape
    side = max(h, w)
    square = np.zeros((n, side, side, c), np.float32)
    square[:, :h, :w] = x
    return square.transpose(0, 3, 1, 2)


def unscale(x: np.ndarray, prep: dict) -> np.ndarray:
    """Undoes the per-pixel scaling of prep.json, so sprites look like the raw images."""
    feats, stats, scale = prep.get("features") or [], prep.get("stats") or {}, prep.get("scale")
    if len(feats) != math.prod(x.shape[1:]) or not all(f in stats for f in feats):
        return x
    flat = x.reshape(len(x), -1)
    if scale == "standard":
        flat = flat * np.array([stats[f]["std"] for f in feats]) + np.array([stats[f]["mean"] for f in feats])
    elif scale == "minmax":
        flat = flat * np.array([stats[f]["range"] for f in feats]) + np.array([stats[f]["min"] for f in feats])
    return flat.reshape(x.shape).astype(np.float32)
