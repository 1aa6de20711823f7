"""A plain conv net: [conv -> act -> pool] per width, then a dense head.

Takes images of any size and channel count ([H, W, C], e.g. 8x8x1, 28x28x1,
32x32x3): a block pools only while the feature map is at least 2 pixels wide, and
the head's input size is worked out from `in_shape` at construction.
"""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx

from dlexp.models.layers import DenseStack, get_activation, image_shape, max_pool

POOLS = {"max": max_pool, "avg": nnx.avg_pool, "none": None}


class CNN(nnx.Module):
    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        *,
        channels: Sequence[int] = (32, 64),
        kernel: int = 3,
        pool: str = "max",
        dense: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        in_shape = image_shape(in_shape, "cnn")
        if pool not in POOLS:
            raise ValueError(f"model.pool={pool!r} is not known; choose one of {', '.join(POOLS)}")
        h, w, c = in_shape
        self.convs = nnx.List()
        self.pools = []
        for width in channels:
            self.convs.append(nnx.Conv(c, int(width), (kernel, kernel), padding="SAME", rngs=rngs))
            c = int(width)
            pooled = pool != "none" and min(h, w) >= 2
            self.pools.append(pooled)
            if pooled:
                h, w = h // 2, w // 2
        self.pool = POOLS[pool]
        self.act = get_activation(activation)
        self.image_shape = in_shape
        self.head = DenseStack(h * w * c, dense, act=self.act, dropout=dropout, rngs=rngs)
        self.out = nnx.Linear(self.head.d_out, num_outputs, rngs=rngs)

    def features(self, x, rngs=None):
        """The penultimate layer, what the output layer sees (the embedding projector shows it)."""
        x = x.reshape((x.shape[0], *self.image_shape))
        for conv, pooled in zip(self.convs, self.pools):
            x = self.act(conv(x))
            if pooled:
                x = self.pool(x, (2, 2), strides=(2, 2))
        return self.head(x.reshape(x.shape[0], -1), rngs=rngs)

    def __call__(self, x, rngs=None):
        return self.out(self.features(x, rngs=rngs))
