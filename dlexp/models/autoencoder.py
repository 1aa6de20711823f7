"""Autoencoders over flattened inputs: plain, or variational (`variational: true`).

The encoder and decoder are dense stacks (`hidden`, mirrored in the decoder). A
VAE's encoder gives a mean and log-variance; in train mode it samples the code by
the reparameterization trick with the step's key (the `dropout` stream dlexp passes
each step), in eval mode it uses the mean, so evaluation is deterministic.
`model(x)` returns {"recon": x-shaped reconstruction, "kl": per-example KL to N(0, I)
(zeros for a plain autoencoder)}; the model declares `task = "autoencoder"`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlexp.models.layers import DenseStack, get_activation


class Autoencoder(nnx.Module):
    task = "autoencoder"  # dlexp.tasks picks the reconstruction task for this model

    def __init__(
        self,
        in_shape: Sequence[int],
        *,
        hidden: Sequence[int] = (128,),
        latent: int = 16,
        variational: bool = False,
        beta: float = 1.0,
        activation: str = "relu",
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.shape, self.latent, self.variational = tuple(int(s) for s in in_shape), int(latent), bool(variational)
        act = get_activation(activation)
        d = math.prod(self.shape)
        self.encoder = DenseStack(d, hidden, act=act, dropout=dropout, rngs=rngs)
        self.code = nnx.Linear(self.encoder.d_out, self.latent * (2 if self.variational else 1), rngs=rngs)
        self.decoder = DenseStack(self.latent, list(hidden)[::-1], act=act, dropout=dropout, rngs=rngs)
        self.recon = nnx.Linear(self.decoder.d_out, d, rngs=rngs)
        self.beta = float(beta)  # the KL's weight in the loss (read by the autoencoder task)
        self.deterministic = False  # model.train() / model.eval() switch this, as for dropout

    def task_options(self) -> dict:
        return {"beta": self.beta if self.variational else 0.0}

    def encode(self, x, rngs=None) -> tuple[jax.Array, jax.Array]:
        """(mean, log-variance) of the code; the log-variance is 0 for a plain autoencoder."""
        h = self.code(self.encoder(x.reshape(x.shape[0], -1), rngs=rngs))
        if not self.variational:
            return h, jnp.zeros_like(h)
        mean, logvar = jnp.split(h, 2, axis=-1)
        return mean, jnp.clip(logvar, -10.0, 10.0)

    def decode(self, z, rngs=None) -> jax.Array:
        return self.recon(self.decoder(z, rngs=rngs)).reshape((z.shape[0], *self.shape))

    def __call__(self, x, rngs=None):
        mean, logvar = self.encode(x, rngs=rngs)
        z = mean
        if self.variational and not self.deterministic:
            if rngs is None:
                raise ValueError(
                    "a VAE in train mode needs rngs to sample its code: model(x, rngs=nnx.Rngs(dropout=key))"
                )
            z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rngs.dropout(), mean.shape, mean.dtype)
        kl = (
            0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
            if self.variational
            else jnp.zeros(x.shape[0])
        )
        return {"recon": self.decode(z, rngs=rngs), "kl": kl}
