"""Images into TensorBoard: what a run's numbers cannot show (figures: dlexp/figures, as
images by dlexp/plots.py; `dlexp.report` saves the same figures as PNGs).

On when `logger.tensorboard` and `logger.plots` are true; each hook acts only for the task it fits:
  classification  at the end, on the test split with the best state: the confusion
                  matrix, ROC curves and, for image data, sample predictions
  regression      at the end: predicted against true on test; forecasting: a few windows
  gan             at each evaluation: samples of one fixed noise batch as a grid
  autoencoder     at each evaluation: val images (top row) and their reconstructions; a VAE
                  also its samples from the prior, as a GAN's

A figure of non-finite outputs (a diverged model) is skipped with a one-line warning: the
run's own status and messages say what went wrong, a plot must not end it.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import numpy as np

from dlexp.hooks.base import Hook
from dlexp.metrics import class_log_odds
from dlexp.plots import (
    confusion_figure,
    forecast_figure,
    image_grid,
    is_image,
    predict_all,
    predictions_figure,
    regression_figure,
    roc_figure,
)
from dlexp.tasks import make_predict

log = logging.getLogger("dlexp")


def finite_or_warn(values: np.ndarray, tag: str) -> bool:
    """Whether `values` are all finite; if not, says which figure is skipped and why."""
    bad = int(np.size(values) - np.isfinite(values).sum())
    if bad:
        log.warning("%s: not drawn, %d of %d model outputs are not finite (NaN or inf)", tag, bad, np.size(values))
    return not bad


class ClassificationPlots(Hook):
    reads_splits = True

    def __init__(self, samples: int = 16):
        self.samples = samples

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        if ctx.task.name != "classification":
            return
        x, y = ctx.data.x["test"], np.asarray(ctx.data.y["test"])
        w = ctx.data.sample_weights("test")  # None: every row counts 1
        params, rest = loop.best_state
        logits = predict_all(jax.jit(make_predict(ctx.model)), params, rest, x)
        pred = logits.argmax(1)
        classes = list(ctx.task.classes or range(logits.shape[1]))
        cm = np.zeros((len(classes), len(classes)))
        np.add.at(cm, (y, pred), 1 if w is None else w)
        step = loop.step
        ctx.writers.image("plots/confusion_matrix", confusion_figure(cm, classes), step)
        if finite_or_warn(logits, "plots/roc"):
            ctx.writers.image("plots/roc", roc_figure(y, np.asarray(class_log_odds(logits)), classes, w), step)
        if is_image(x.shape[1:]):
            k = min(self.samples, len(x))
            ctx.writers.image("plots/predictions", predictions_figure(x[:k], y[:k], pred[:k], classes), step)


class RegressionPlots(Hook):
    reads_splits = True

    def __init__(self, windows: int = 4):
        self.windows = windows

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        if ctx.task.name not in ("regression", "forecasting"):
            return
        mean, std = ctx.task.target_scale
        x, y = ctx.data.x["test"], np.asarray(ctx.data.y["test"])
        params, rest = loop.best_state
        pred = predict_all(jax.jit(make_predict(ctx.model)), params, rest, x).reshape(y.shape) * std + mean
        true = y * std + mean
        if not finite_or_warn(pred, "plots/predictions"):
            return
        ctx.writers.image("plots/predictions", regression_figure(true.ravel(), pred.ravel()), loop.step)
        if ctx.task.name == "forecasting" and x.ndim >= 2:
            idx = np.linspace(0, len(x) - 1, min(self.windows, len(x))).astype(int)
            history = x[idx, :, 0] if x.ndim == 3 else x[idx]  # the first input column: the series itself
            ctx.writers.image("plots/forecasts", forecast_figure(history * std + mean, true[idx], pred[idx]), loop.step)


class GANSamples(Hook):
    """Samples of one fixed noise batch at each evaluation (a GAN's, or a VAE's from its
    prior): the same z, so frames compare."""

    def __init__(self, seed: int, count: int = 64):
        self.seed, self.count, self.sample = seed, count, None

    def on_start(self, ctx: Any, loop: Any) -> None:
        generates = ctx.task.name == "gan" or getattr(ctx.task, "variational", False)
        if not generates or not is_image(ctx.data.input_shape):
            return
        self.z = jax.random.normal(jax.random.key(self.seed + 7919), (self.count, ctx.task.latent))
        self.sample = jax.jit(ctx.task.make_sampler(ctx.model))

    def on_eval(self, ctx: Any, loop: Any, improved: bool) -> None:
        if self.sample is not None:
            images = np.asarray(self.sample(loop.state["params"], loop.state["rest"], self.z))
            if finite_or_warn(images, "samples/generated"):
                ctx.writers.image("samples/generated", image_grid(images), loop.step)


class Reconstructions(Hook):
    """The first val images (top row) over their reconstructions (bottom row)."""

    reads_splits = True

    def __init__(self, count: int = 8):
        self.count, self.reconstruct = count, None

    def on_start(self, ctx: Any, loop: Any) -> None:
        if ctx.task.name != "autoencoder" or not is_image(ctx.data.input_shape):
            return
        self.x = np.asarray(ctx.data.x["val"][: self.count])
        self.reconstruct = jax.jit(ctx.task.make_reconstruct(ctx.model))

    def on_eval(self, ctx: Any, loop: Any, improved: bool) -> None:
        if self.reconstruct is not None:
            recon = np.asarray(self.reconstruct(loop.state["params"], loop.state["rest"], self.x))
            if not finite_or_warn(recon, "samples/reconstructions"):
                return
            grid = image_grid(np.concatenate([self.x, recon.reshape(self.x.shape)]), cols=len(self.x))
            ctx.writers.image("samples/reconstructions", grid, loop.step)
