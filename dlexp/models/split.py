"""A model as pure data: the static graph and dicts of arrays that jitted code takes.

The trainer splits a model once (`nnx.split`) and jits pure functions of the dicts, so
the same step runs under a mesh, `pmap` or `vmap` without NNX graph traversal per call.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


@dataclass(frozen=True)
class SplitModel:
    """A model as static graphdefs (train and eval mode) plus its initial state."""

    train_def: Any
    eval_def: Any
    params: dict
    rest: dict  # batch statistics and any other non-parameter state
    takes_rngs: bool  # whether __call__ takes `rngs` (dropout keys)


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


def all_finite(tree: Any) -> jax.Array:
    """Whether every float value of a tree of arrays is finite (one fused reduction under jit)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def has_conv(model: nnx.Module) -> bool:
    """Whether the model convolves (XLA CPU compiles convolution gradients differently)."""
    return any(isinstance(m, (nnx.Conv, nnx.ConvTranspose)) for _, m in nnx.iter_graph(model))
