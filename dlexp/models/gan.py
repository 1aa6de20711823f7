"""A GAN: a generator (noise -> example) and a discriminator (example -> real/fake logit).

`kind: dcgan` (images) upsamples with strided transposed convolutions and batch norm
in the generator and downsamples with strided convolutions and leaky ReLU in the
discriminator; `kind: mlp` (tabular rows, or any shape) uses dense layers. `auto`
picks dcgan for [H, W, C] inputs. The model declares `task = "gan"`, so dlexp trains
it with the GAN task (two optimizer states, alternating steps) whatever the data's
labels are. `model(x)` is the discriminator's logit; `model.generate(z)` samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
from flax import nnx

from dlexp.models.layers import Dropout, get_activation

BN_MOMENTUM = 0.9
KINDS = ("auto", "dcgan", "mlp")
OUTPUTS = ("linear", "tanh", "sigmoid")  # the generator's last activation: match the data's scaling


def _out(name: str):
    if name not in OUTPUTS:
        raise ValueError(f"model.output={name!r} is not known; choose one of {', '.join(OUTPUTS)}")
    return (lambda x: x) if name == "linear" else get_activation(name)


class ConvGenerator(nnx.Module):
    """z -> [s, s, widths[0]] -> a stride-2 transposed conv per width -> [H, W, C] (cropped)."""

    def __init__(self, latent: int, shape: tuple[int, ...], widths: Sequence[int], output: str, rngs: nnx.Rngs):
        h, w, c = shape
        up = 2 ** len(widths)
        self.start = (-(-h // up), -(-w // up), int(widths[0]))
        self.shape, self.output = shape, _out(output)
        self.fc = nnx.Linear(latent, math.prod(self.start), rngs=rngs)
        self.bn0 = nnx.BatchNorm(self.start[2], momentum=BN_MOMENTUM, rngs=rngs)
        chans = [int(x) for x in widths] + [c]
        self.ups = nnx.List([nnx.ConvTranspose(a, b, (4, 4), strides=2, rngs=rngs) for a, b in zip(chans, chans[1:])])
        self.bns = nnx.List([nnx.BatchNorm(b, momentum=BN_MOMENTUM, rngs=rngs) for b in chans[1:-1]])

    def __call__(self, z):
        x = nnx.relu(self.bn0(self.fc(z).reshape((z.shape[0], *self.start))))
        for i, up in enumerate(self.ups):
            x = up(x)
            if i < len(self.bns):
                x = nnx.relu(self.bns[i](x))
        h, w, _ = self.shape
        return self.output(x[:, :h, :w, :])


class ConvDiscriminator(nnx.Module):
    """A stride-2 conv + leaky ReLU per width (no batch norm: real and fake batches differ), then a logit."""

    def __init__(self, shape: tuple[int, ...], widths: Sequence[int], dropout: float, rngs: nnx.Rngs):
        h, w, c = self.shape = shape
        self.convs = nnx.List()
        for width in widths:
            self.convs.append(nnx.Conv(c, int(width), (4, 4), strides=2, padding="SAME", rngs=rngs))
            c, h, w = int(width), -(-h // 2), -(-w // 2)
        self.dropout = Dropout(dropout)
        self.out = nnx.Linear(h * w * c, 1, rngs=rngs)

    def __call__(self, x, rngs=None):
        x = x.reshape((x.shape[0], *self.shape))
        for conv in self.convs:
            x = self.dropout(nnx.leaky_relu(conv(x), 0.2), rngs=rngs)
        return self.out(x.reshape(x.shape[0], -1))


class MLPGenerator(nnx.Module):
    def __init__(self, latent: int, shape: tuple[int, ...], widths: Sequence[int], output: str, rngs: nnx.Rngs):
        self.shape, self.output = shape, _out(output)
        dims = [latent, *[int(x) for x in widths]]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims, dims[1:])])
        self.bns = nnx.List([nnx.BatchNorm(b, momentum=BN_MOMENTUM, rngs=rngs) for b in dims[1:]])
        self.out = nnx.Linear(dims[-1], math.prod(shape), rngs=rngs)

    def __call__(self, z):
        for layer, bn in zip(self.layers, self.bns):
            z = nnx.relu(bn(layer(z)))
        return self.output(self.out(z)).reshape((z.shape[0], *self.shape))


class MLPDiscriminator(nnx.Module):
    def __init__(self, shape: tuple[int, ...], widths: Sequence[int], dropout: float, rngs: nnx.Rngs):
        dims = [math.prod(shape), *[int(x) for x in widths]]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims, dims[1:])])
        self.dropout = Dropout(dropout)
        self.out = nnx.Linear(dims[-1], 1, rngs=rngs)

    def __call__(self, x, rngs=None):
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = self.dropout(nnx.leaky_relu(layer(x), 0.2), rngs=rngs)
        return self.out(x)


class GAN(nnx.Module):
    task = "gan"  # dlexp.tasks picks the GAN task for this model

    def __init__(
        self,
        in_shape: Sequence[int],
        *,
        latent: int = 32,
        kind: str = "auto",
        g_widths: Sequence[int] = (64, 32),
        d_widths: Sequence[int] = (32, 64),
        output: str = "linear",
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        if kind not in KINDS:
            raise ValueError(f"model.kind={kind!r} is not known; choose one of {', '.join(KINDS)}")
        shape: tuple[int, ...] = tuple(int(s) for s in in_shape)
        if kind == "auto":
            kind = "dcgan" if len(shape) == 3 else "mlp"
        if kind == "dcgan" and len(shape) != 3:
            raise ValueError(f"model.kind=dcgan needs image inputs [H, W, C]; this data set gives {list(shape)}")
        self.latent, self.kind, self.shape = int(latent), kind, shape
        if kind == "dcgan":
            self.generator = ConvGenerator(self.latent, shape, g_widths, output, rngs)
            self.discriminator = ConvDiscriminator(shape, d_widths, dropout, rngs)
        else:
            self.generator = MLPGenerator(self.latent, shape, g_widths, output, rngs)
            self.discriminator = MLPDiscriminator(shape, d_widths, dropout, rngs)

    def task_options(self) -> dict:
        return {"latent": self.latent}

    def __call__(self, x, rngs=None):
        return self.discriminator(x, rngs=rngs)

    def generate(self, z: jax.Array) -> jax.Array:
        return self.generator(z)
