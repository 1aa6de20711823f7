"""Per-layer histograms of parameters and gradients, and update-to-parameter ratios.

The train step stays lean (it returns only the global gradient norm). At the
inspection cadence this hook takes one training batch and logs:

  params/<path>         histogram of each parameter array (path: body/layers/0/kernel)
  grads/<path>          histogram of the gradient of the task's loss on that batch
  update_ratio/<path>   ||update|| / ||param|| of each array (scalar)
  optimizer/update_ratio    the same over all parameters

The update is what the run's own train step (its optimizer state, schedule, clipping,
penalties) would change the params by on that batch, so the ratio is exact for any
task, a GAN's two nets included. A healthy ratio is around 1e-3 per step; far above,
the learning rate is too high for that layer, far below, the layer barely learns.
Gradient histograms need a task with the standard step (a loss of outputs and targets);
the penalties of `loss.l1` / `loss.l2` are left out of them: they show the data's pull.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

log = logging.getLogger("dlexp")


def leaf_paths(tree: Any) -> list[tuple[str, Any]]:
    """[(\"body/layers/0/kernel\", array), ...] for a nested dict of arrays."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [("/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path), leaf) for path, leaf in flat]


def loss_grads(task, sm, params, rest, x, y, key):
    """Pure: the gradient of the task's mean loss on (x, y), in train mode."""
    targets = task.targets(x, y) if hasattr(task, "targets") else y
    inputs = task.inputs(x, y) if hasattr(task, "inputs") else x  # seq2seq: (source, target)

    def loss_fn(p):
        model = nnx.merge(sm.train_def, p, rest)
        out = model(inputs, rngs=nnx.Rngs(dropout=key)) if sm.takes_rngs else model(inputs)
        return jnp.mean(task.loss(out, targets))

    return jax.grad(loss_fn)(params)


def applied_update(train_step, state, x, y, key):
    """Pure: how much the run's train step would change each parameter on (x, y)."""
    new_state, _ = train_step(state, x, y, key)
    return jax.tree.map(jnp.subtract, new_state["params"], state["params"])


def update_ratios(params: Any, updates: Any) -> dict[str, float]:
    """||update|| / ||param|| per array and over all parameters (`optimizer/update_ratio`).
    An array that is still all zeros (a bias at init) has no ratio yet and is left out."""
    ratios = {}
    for (path, p), (_, u) in zip(leaf_paths(params), leaf_paths(updates)):
        norm = np.linalg.norm(p)
        if norm > 1e-8:
            ratios[f"update_ratio/{path}"] = float(np.linalg.norm(u) / norm)
    total_p = float(optax.tree.norm(params))
    ratios["optimizer/update_ratio"] = float(optax.tree.norm(updates)) / max(total_p, 1e-12)
    return ratios
