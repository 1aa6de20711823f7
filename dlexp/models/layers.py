"""Small pieces the model files share."""

from __future__ import annotations

from typing import Callable

import jax
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


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r} is not known; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class DenseStack(nnx.Module):
    """Linear -> activation -> dropout, repeated: the head of every classifier here."""

    def __init__(self, d_in: int, widths, *, act, dropout: float, rngs: nnx.Rngs):
        self.layers = nnx.List()
        for w in widths:
            self.layers.append(nnx.Linear(d_in, int(w), rngs=rngs))
            d_in = int(w)
        self.act = act
        self.dropout = nnx.Dropout(dropout)
        self.d_out = d_in

    def __call__(self, x, rngs=None):
        for layer in self.layers:
            x = self.dropout(self.act(layer(x)), rngs=rngs)
        return x
