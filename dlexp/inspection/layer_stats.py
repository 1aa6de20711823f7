"""Per-layer histograms of parameters and gradients, and update-to-parameter ratios.

The train step stays lean (it returns only the global gradient norm). At the
inspection cadence this hook takes one training batch, computes its gradients and
the update the optimizer would apply from the current state, and logs:

  params/<path>         histogram of each parameter array (path: body/layers/0/kernel)
  grads/<path>          histogram of its gradient on that batch
  update_ratio/<path>   ||update|| / ||param|| of each array (scalar)
  train/update_ratio    the same over all parameters

A healthy ratio is around 1e-3 per step; far above, the learning rate is too high for
that layer, far below, the layer barely learns.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dlexp.hooks import Hook

log = logging.getLogger("dlexp")


def leaf_paths(tree: Any) -> list[tuple[str, Any]]:
    """[(\"body/layers/0/kernel\", array), ...] for a nested dict of arrays."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [("/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path), leaf) for path, leaf in flat]


def grads_and_updates(task, sm, tx, params, rest, opt, x, y, key):
    """Pure: the gradient of the mean loss on (x, y) and the optimizer's update for it."""

    def loss_fn(p):
        model = nnx.merge(sm.train_def, p, rest)
        out = model(x, rngs=nnx.Rngs(dropout=key)) if sm.takes_rngs else model(x)
        return jnp.mean(task.loss(out, y))

    grads = jax.grad(loss_fn)(params)
    updates, _ = tx.update(grads, opt, params)
    return grads, updates


def update_ratios(params: Any, updates: Any) -> dict[str, float]:
    """||update|| / ||param|| per array and over all parameters (`train/update_ratio`)."""
    ratios = {}
    for (path, p), (_, u) in zip(leaf_paths(params), leaf_paths(updates)):
        ratios[f"update_ratio/{path}"] = float(np.linalg.norm(u) / max(np.linalg.norm(p), 1e-12))
    total_p = float(optax.tree.norm(params))
    ratios["train/update_ratio"] = float(optax.tree.norm(updates)) / max(total_p, 1e-12)
    return ratios


def one_copy(ctx, state: Any) -> Any:
    """The state as one copy (a pmap run carries one per device)."""
    unreplicate = getattr(ctx.layout, "unreplicate", None)
    return unreplicate(state) if unreplicate else state


class LayerStats(Hook):
    """Histograms and update ratios every `every` steps (checked at each train log)."""

    def __init__(self, every: int, make_tx: Callable[[int], optax.GradientTransformation], seed: int = 0):
        self.every = max(int(every), 1)
        self.make_tx = make_tx  # total steps -> the run's optimizer (rebuilt: the hook has no handle on it)
        self.seed = seed
        self.step_fn = None
        self.last = None

    def on_start(self, ctx, loop) -> None:
        state = loop.state
        if isinstance(state, dict) and "opt" in state and hasattr(ctx.task, "loss"):
            tx = self.make_tx(ctx.plan.total_steps)
            self.step_fn = jax.jit(lambda p, r, o, x, y, k: grads_and_updates(ctx.task, ctx.model, tx, p, r, o, x, y, k))
        else:
            log.warning("inspection: this task's state has no optimizer state; logging parameter histograms only")
        self.write(ctx, loop)  # the initialization, before the first step

    def on_log(self, ctx, loop) -> None:
        if loop.step // self.every > self.last // self.every:
            self.write(ctx, loop)

    def write(self, ctx, loop) -> None:
        self.last = step = loop.step
        state = one_copy(ctx, loop.state)
        params = state["params"]
        host_params = jax.device_get(params)
        for path, value in leaf_paths(host_params):
            ctx.writers.histogram(f"params/{path}", np.asarray(value), step)
        if self.step_fn is None:
            return
        x, y = self.batch(ctx, step)
        key = jax.random.fold_in(jax.random.key(self.seed), step)
        grads, updates = jax.device_get(self.step_fn(params, state["rest"], state["opt"], x, y, key))
        for path, value in leaf_paths(grads):
            ctx.writers.histogram(f"grads/{path}", np.asarray(value), step)
        ctx.writers.scalars(step, update_ratios(host_params, updates))

    def batch(self, ctx, step: int) -> tuple[np.ndarray, np.ndarray]:
        """A training batch drawn by step number: the same batches on a rerun."""
        x, y = ctx.data.x["train"], ctx.data.y["train"]
        n = min(ctx.plan.batch_size, len(x))
        idx = np.sort(np.random.default_rng((self.seed, step)).choice(len(x), n, replace=False))
        return x[idx], y[idx]
