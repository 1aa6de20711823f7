"""The pure step functions every supervised task shares.

A model is split once (`nnx.split`) into a static graphdef and pure dicts of arrays
(params, and `rest`: batch statistics and any other non-parameter state). The steps
below are plain functions of those dicts, so the trainer can jit them, scan them,
shard them over a mesh or vmap them without NNX graph traversal on every call.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class Task:
    """Loss and metrics of one kind of problem; see classification.py / regression.py."""

    name: str
    metric_names: tuple[str, ...] = ()

    def loss(self, outputs, targets):  # per-example loss [batch]
        raise NotImplementedError

    def sums(self, losses, outputs, targets, weights) -> dict:  # metric sums (device)
        raise NotImplementedError

    def finalize(self, sums) -> dict[str, float]:  # sums -> numbers (host)
        raise NotImplementedError

    # A task with another state or update (a GAN's two nets) overrides these three.
    def init_state(self, sm: "SplitModel", tx) -> dict:
        return {"params": sm.params, "rest": sm.rest, "opt": tx.init(sm.params), "step": jnp.zeros((), jnp.int32)}

    def make_train_step(self, sm: "SplitModel", tx, axis_name: str | None = None) -> Callable:
        return make_train_step(self, sm, tx, axis_name)

    def make_eval_step(self, sm: "SplitModel") -> Callable:
        return make_eval_step(self, sm)


@dataclass(frozen=True)
class SplitModel:
    """A model as static graphdefs (train and eval mode) plus its initial state."""

    train_def: Any
    eval_def: Any
    params: dict
    rest: dict
    takes_rngs: bool


def split_model(model: nnx.Module) -> SplitModel:
    model.train()
    train_def, params, rest = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_def = nnx.split(model, nnx.Param, ...)[0]
    model.train()
    takes_rngs = "rngs" in inspect.signature(type(model).__call__).parameters
    return SplitModel(train_def, eval_def, nnx.to_pure_dict(params), nnx.to_pure_dict(rest), takes_rngs)


def count_params(params: dict) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))


def _forward(graphdef, params, rest, x, key, takes_rngs: bool):
    model = nnx.merge(graphdef, params, rest)
    out = model(x, rngs=nnx.Rngs(dropout=key)) if takes_rngs and key is not None else model(x)
    new_rest = nnx.to_pure_dict(nnx.split(model, nnx.Param, ...)[2])
    return out, new_rest


def make_train_step(task: Task, sm: SplitModel, tx: optax.GradientTransformation, axis_name: str | None = None) -> Callable:
    """(state, x, y, key) -> (state, metric sums): one optimizer update on one batch.

    Under `pmap`, `axis_name` names the device axis: gradients are averaged and
    metric sums added across it, so every replica applies the same update.
    """

    def train_step(state, x, y, key):
        def loss_fn(params):
            out, rest = _forward(sm.train_def, params, state["rest"], x, key, sm.takes_rngs)
            losses = task.loss(out, y)
            return jnp.mean(losses), (losses, out, rest)

        (_, (losses, out, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
            rest = jax.lax.pmean(rest, axis_name)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        sums = task.sums(losses, out, y, jnp.ones(losses.shape, jnp.float32))
        if axis_name is not None:
            sums = jax.lax.psum(sums, axis_name)
        sums["grad_norm"] = optax.tree.norm(grads)
        return {"params": params, "rest": rest, "opt": opt, "step": state["step"] + 1}, sums

    return train_step


def make_eval_step(task: Task, sm: SplitModel) -> Callable:
    """(params, rest, x, y, weights) -> metric sums, in eval mode (no dropout, running stats)."""

    def eval_step(params, rest, x, y, weights):
        out, _ = _forward(sm.eval_def, params, rest, x, None, sm.takes_rngs)
        losses = task.loss(out, y)
        return task.sums(losses, out, y, weights)

    return eval_step
