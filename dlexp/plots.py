"""TensorBoard's images: the figures of dlexp/figures rendered to arrays, image grids, and
model outputs in fixed-size chunks (the hooks that write them: dlexp/hooks/plots.py).

Tags: plots/confusion_matrix, plots/roc, plots/predictions, plots/forecasts,
samples/generated, samples/reconstructions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from dlexp.figures import classification, regression
from dlexp.figures.images import image_grid as image_grid  # the hooks' and the report's grids
from dlexp.figures.style import to_array

CHUNK = 256  # predictions in fixed-size chunks: one compiled shape


def confusion_figure(cm: np.ndarray, classes: Sequence) -> np.ndarray:
    return to_array(classification.confusion(cm, classes))


def roc_figure(
    labels: np.ndarray, scores: np.ndarray, classes: Sequence, weights: np.ndarray | None = None
) -> np.ndarray:
    """`scores`: per-class log-odds; `weights`: sample weights (classification.roc_curves)."""
    return to_array(classification.roc(classification.roc_curves(labels, scores, classes, weights)))


def predictions_figure(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, classes: Sequence) -> np.ndarray:
    return to_array(classification.predictions(images, labels, preds, classes))


def regression_figure(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return to_array(regression.predicted_vs_true(true, pred))


def forecast_figure(history: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return to_array(regression.forecasts(history, true, pred))


def predict_all(fn: Callable, params, rest, x: np.ndarray) -> np.ndarray:
    """fn(params, rest, chunk) over `x` in padded chunks of CHUNK rows, as one host array."""
    outs = []
    for start in range(0, len(x), CHUNK):
        xb = x[start : start + CHUNK]
        pad = CHUNK - len(xb)
        xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)]) if pad else xb
        outs.append(np.asarray(jax.device_get(fn(params, rest, xb)))[: CHUNK - pad])
    return np.concatenate(outs)


def is_image(shape: Sequence[int]) -> bool:
    return len(shape) == 3 and shape[-1] in (1, 3)
