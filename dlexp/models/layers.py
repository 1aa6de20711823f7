"""Small pieces the model files share: activations, a dense stack, input shapes."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nnx.relu,
    "gelu": nnx.gelu,
    "silu": nnx.silu,
    "tanh": nnx.tanh,
    "elu": nnx.elu,
    "leaky_relu": nnx.leaky_relu,
    "sigmoid": nnx.sigmoid,
}


class Rate(nnx.Variable):
    """A rate held as model state, not as a constant: copies of one compiled program (a packed
    sweep, `trainer.copies`) may each have their own. Not a parameter: never trained."""


class Dropout(nnx.Module):
    """`nnx.Dropout` with its rate as state (`Rate`), so a dropout rate is vectorizable.

    A rate of 0 is the identity with no mask drawn; which layers drop is fixed when the model
    is built, so copies packed together share zero and non-zero rates (the sweeper groups so).
    """

    def __init__(self, rate: float, *, rng_collection: str = "dropout"):
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"a dropout rate must be in [0, 1), got {rate}")
        self.active = float(rate) > 0.0
        self.rate = Rate(jnp.asarray(rate, jnp.float32))
        self.rng_collection = rng_collection
        self.deterministic = False  # model.train() / model.eval() switch this

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        if not self.active or self.deterministic:
            return x
        if rngs is None:
            raise ValueError("dropout in train mode needs rngs: model(x, rngs=nnx.Rngs(dropout=key))")
        keep = 1.0 - self.rate[...].astype(jnp.float32)
        mask = jax.random.bernoulli(rngs[self.rng_collection](), keep, x.shape)
        return jax.lax.select(mask, x / keep.astype(x.dtype), jnp.zeros_like(x))


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int] | None = None) -> jax.Array:
    """`nnx.max_pool` (VALID padding) over [B, H, W, C]; non-overlapping windows are taken
    as the max of strided slices.

    Same values; the gradient becomes elementwise selects instead of XLA's select-and-scatter,
    which is slow on CPU: 1.7 vs 56 ms for the gradient of a 2x2 pool of 128x28x28x32 on this
    2-core machine (docs/performance.md). Where inputs tie, the gradient is shared between them
    (select-and-scatter gives it to one); after a ReLU, tied zeros get no gradient either way.
    """
    strides = tuple(strides or window)
    if tuple(window) != strides or x.ndim != 4:  # overlapping windows: XLA's reduce_window
        return nnx.max_pool(x, tuple(window), strides=strides)
    kh, kw = window
    h, w = x.shape[1] // kh * kh, x.shape[2] // kw * kw
    x = x[:, :h, :w]
    slices = [x[:, i::kh, j::kw] for i in range(kh) for j in range(kw)]
    return functools.reduce(jnp.maximum, slices)


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r} is not known; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def image_shape(in_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    """[H, W, C] of an image input ([H, W] grey images get C=1); tabular input is an error."""
    if len(in_shape) == 2:
        in_shape = (*in_shape, 1)
    if len(in_shape) != 3:
        raise ValueError(f"model={model} needs image inputs [H, W, C]; this data set gives {list(in_shape)}")
    return int(in_shape[0]), int(in_shape[1]), int(in_shape[2])


def sequence_shape(in_shape: Sequence[int]) -> tuple[int, int]:
    """[time, features] of an input read as a sequence: [T] is T scalars (a series window),
    [T, F] is itself, an image [H, W, C] is H rows of W*C values (read row by row)."""
    if len(in_shape) == 1:
        return int(in_shape[0]), 1
    return int(in_shape[0]), int(math.prod(in_shape[1:]))


PAD_ID = 0  # token ids of a text column are padded with 0 (dlexp/data/text.py)


def token_mask(ids: jax.Array) -> jax.Array:
    """bool [B, L]: the real tokens of padded token ids."""
    return ids != PAD_ID


def masked_mean(x: jax.Array, keep: jax.Array) -> jax.Array:
    """[B, L, D] -> [B, D]: the mean over the steps `keep` [B, L] marks (at least one per row)."""
    w = keep.astype(x.dtype)[..., None]
    return (x * w).sum(axis=1) / jnp.maximum(w.sum(axis=1), 1)


class DenseStack(nnx.Module):
    """Linear -> activation -> dropout, repeated: the head of every classifier here."""

    def __init__(self, d_in: int, widths, *, act, dropout: float, rngs: nnx.Rngs):
        self.layers = nnx.List()
        for w in widths:
            self.layers.append(nnx.Linear(d_in, int(w), rngs=rngs))
            d_in = int(w)
        self.act = act
        self.dropout = Dropout(dropout)
        self.d_out = d_in

    def __call__(self, x, rngs=None):
        for layer in self.layers:
            x = self.dropout(self.act(layer(x)), rngs=rngs)
        return x
