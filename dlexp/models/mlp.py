"""Multi-layer perceptron over flattened inputs (tabular rows or images)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from flax import nnx

from dlexp.models.layers import DenseStack, get_activation


class MLP(nnx.Module):
    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        *,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.body = DenseStack(math.prod(in_shape), hidden, act=get_activation(activation), dropout=dropout, rngs=rngs)
        self.head = nnx.Linear(self.body.d_out, num_outputs, rngs=rngs)

    def features(self, x, rngs=None):
        """The penultimate layer, what the head sees (the embedding projector shows it)."""
        return self.body(x.reshape(x.shape[0], -1), rngs=rngs)

    def __call__(self, x, rngs=None):
        return self.head(self.features(x, rngs=rngs))
