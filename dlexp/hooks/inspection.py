"""What a run shows about itself beyond its metrics (the maths: dlexp/inspection/).

TestConfusion   always, for classification: the test confusion matrix of the best state into summary.json
Embeddings      logger.embeddings=true: penultimate-layer features of val samples for the projector
LayerStats      logger.histograms_every=N: histograms of params and grads, update ratios
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import jax
import numpy as np
import optax
from flax import nnx

from dlexp.hooks.base import Hook
from dlexp.inspection.confusion import confusion_matrix
from dlexp.inspection.embeddings import TAG, features_and_outputs, metadata_rows, sample_indices, sprite_images
from dlexp.inspection.layer_stats import applied_update, leaf_paths, loss_grads, update_ratios
from dlexp.tasks import Task

log = logging.getLogger("dlexp")


class TestConfusion(Hook):
    """The test confusion matrix of the best state into summary.json: a copies run (trainer.seeds,
    a packed sweep) puts each copy's into its own entry, computed in one vmapped pass."""

    copies_ok = True
    reads_splits = True

    def on_end(self, ctx, loop, summary: dict) -> None:
        if ctx.data.task != "classification" or loop.best_state is None:
            return
        params, rest = loop.best_state
        weights = ctx.data.sample_weights("test")
        copies = summary.get("copies")
        step = ctx.task.make_eval_step(ctx.model)
        if copies is not None:
            step = jax.vmap(step, in_axes=(0, 0, None, None, None))
        cm = confusion_matrix(step, params, rest, ctx.data.x["test"], ctx.data.y["test"], weights)
        if cm is None:
            return
        entries = zip(copies, cm) if copies is not None else [(summary, cm)]
        classes = ctx.data.classes or list(range(cm.shape[-1]))
        for entry, matrix in entries:
            entry["confusion"] = {
                "split": "test",
                "classes": list(classes),
                "matrix": matrix.round().astype(int).tolist() if weights is None else matrix.round(6).tolist(),
                "weighted": weights is not None,
            }


class Embeddings(Hook):
    """Writes the projector data once, at the end of a run, from the best state."""

    reads_splits = True

    def __init__(self, samples: int = 500, seed: int = 0):
        self.samples = int(samples)
        self.seed = seed

    def on_end(self, ctx, loop, summary: dict) -> None:
        data = ctx.data
        idx = sample_indices(len(data.x["val"]), self.samples, self.seed)
        x, y = data.x["val"][idx], data.y["val"][idx]
        params, rest = loop.best_state
        graphdef = ctx.model.eval_def
        if not callable(getattr(nnx.merge(graphdef, params, rest), "features", None)):
            log.info("embeddings: the model has no features(x); the projector shows its outputs instead")
        forward = jax.jit(lambda p, r, xb: features_and_outputs(graphdef, p, r, xb))
        feats, out = jax.device_get(forward(params, rest, x))
        header, rows = metadata_rows(ctx.task, y, np.asarray(out), data.classes, data.target_scale)
        images = sprite_images(x, data.prep)
        ctx.writers.embedding(TAG, np.asarray(feats), rows, header, images, loop.step)


class LayerStats(Hook):
    """Histograms and update ratios every `every` steps (checked at each train log)."""

    reads_splits = True

    def __init__(self, every: int, make_tx: Callable[[int], optax.GradientTransformation], seed: int = 0):
        self.every = max(int(every), 1)
        self.make_tx = make_tx  # total steps -> the run's optimizer (rebuilt: the hook has no handle on it)
        self.seed = seed
        self.update_fn = self.grads_fn = None
        self.last = None

    def on_start(self, ctx, loop) -> None:
        task, sm = ctx.task, ctx.model
        train_step = task.make_train_step(sm, self.make_tx(ctx.plan.total_steps))
        self.update_fn = jax.jit(lambda state, x, y, key: applied_update(train_step, state, x, y, key))
        if type(task).make_train_step is Task.make_train_step:
            self.grads_fn = jax.jit(lambda p, r, x, y, key: loss_grads(task, sm, p, r, x, y, key))
        else:
            log.info(
                "inspection: %s has its own train step; no gradient histograms (params and updates only)", task.name
            )
        self.write(ctx, loop)  # the initialization, before the first step

    def on_log(self, ctx, loop) -> None:
        if loop.step // self.every > (self.last or 0) // self.every:
            self.write(ctx, loop)

    def write(self, ctx, loop) -> None:
        self.last = step = loop.step
        state = ctx.layout.unreplicate(loop.state)
        x, y = self.batch(ctx, step)
        key = jax.random.fold_in(jax.random.key(self.seed), step)
        params = jax.device_get(state["params"])
        for path, value in leaf_paths(params):
            ctx.writers.histogram(f"params/{path}", np.asarray(value), step)
        if self.grads_fn is not None:
            grads = jax.device_get(self.grads_fn(state["params"], state["rest"], x, y, key))
            for path, value in leaf_paths(grads):
                ctx.writers.histogram(f"grads/{path}", np.asarray(value), step)
        assert self.update_fn is not None  # made in on_start
        updates = jax.device_get(self.update_fn(state, x, y, key))
        ctx.writers.scalars(step, update_ratios(params, updates))

    def batch(self, ctx, step: int) -> tuple[np.ndarray, np.ndarray]:
        """A training batch drawn by step number: the same batches on a rerun."""
        split = "train" if ctx.data.x["train"] is not None else "val"  # a streamed train split stays on disk
        x, y = ctx.data.x[split], ctx.data.y[split]
        n = min(ctx.plan.batch_size, len(x))
        idx = np.sort(np.random.default_rng((self.seed, step)).choice(len(x), n, replace=False))
        return x[idx], y[idx]
