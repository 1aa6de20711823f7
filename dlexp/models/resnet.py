"""A small ResNet: a conv stem, stages of residual blocks with batch norm, global
average pooling, a dense head. Depth (`blocks` per stage) and width (`widths`, one
per stage) come from the config; each stage after the first halves the feature map
while it is at least 2 pixels wide, so 8x8 digits and 32x32 colour images both fit.

Batch norm uses the batch's statistics in train mode and the running averages in
eval mode (`model.train()` / `model.eval()`); the running averages live in the
model's non-parameter state, which the train step carries. Under a multi-device
mesh the batch is sharded and the state replicated, so the batch mean inside the
jitted step is the global batch's mean: the statistics are cross-device already.
"""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx

from dlexp.models.layers import Dropout, image_shape

BN_MOMENTUM = 0.9  # running averages settle within a few hundred steps (short runs)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int, rngs: nnx.Rngs) -> nnx.Sequential:
    return nnx.Sequential(
        nnx.Conv(c_in, c_out, (kernel, kernel), strides=stride, padding="SAME", use_bias=False, rngs=rngs),
        nnx.BatchNorm(c_out, momentum=BN_MOMENTUM, rngs=rngs),
    )


class ResidualBlock(nnx.Module):
    """conv-bn-relu-conv-bn plus the input (projected by a 1x1 conv when its shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, rngs: nnx.Rngs):
        self.a = conv_bn(c_in, c_out, 3, stride, rngs)
        self.b = conv_bn(c_out, c_out, 3, 1, rngs)
        self.project = conv_bn(c_in, c_out, 1, stride, rngs) if stride != 1 or c_in != c_out else None

    def __call__(self, x):
        h = self.b(nnx.relu(self.a(x)))
        return nnx.relu(h + (x if self.project is None else self.project(x)))


class ResNet(nnx.Module):
    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        *,
        widths: Sequence[int] = (32, 64),
        blocks: int = 2,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        h, w, c = self.image_shape = image_shape(in_shape, "resnet")
        if blocks < 1 or not widths:
            raise ValueError(f"model.blocks={blocks} and model.widths={list(widths)} need at least one block and stage")
        self.stem = conv_bn(c, int(widths[0]), 3, 1, rngs)
        self.blocks = nnx.List()
        c = int(widths[0])
        for stage, width in enumerate(widths):
            for i in range(blocks):
                stride = 2 if stage > 0 and i == 0 and min(h, w) >= 2 else 1
                h, w = -(-h // stride), -(-w // stride)
                self.blocks.append(ResidualBlock(c, int(width), stride, rngs=rngs))
                c = int(width)
        self.dropout = Dropout(dropout)
        self.out = nnx.Linear(c, num_outputs, rngs=rngs)

    def features(self, x, rngs=None):
        """The penultimate layer, what the output layer sees (the embedding projector shows it)."""
        x = nnx.relu(self.stem(x.reshape((x.shape[0], *self.image_shape))))
        for block in self.blocks:
            x = block(x)
        return self.dropout(x.mean(axis=(1, 2)), rngs=rngs)

    def __call__(self, x, rngs=None):
        return self.out(self.features(x, rngs=rngs))
