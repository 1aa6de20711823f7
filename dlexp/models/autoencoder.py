"""Autoencoders over flattened inputs: plain, or variational (`variational: true`).

The encoder and decoder are dense stacks (`hidden`, mirrored in the decoder). A
VAE's encoder gives a mean and log-variance; in train mode it samples the code by
the reparameterization trick with the step's key (the `dropout` stream dlexp passes
each step), in eval mode it uses the mean, so evaluation is deterministic.

`model(x)` returns the decoder's raw output ("recon": logits under a Bernoulli
likelihood, the mean under a Gaussian one), the code's mean ("code") and per-dimension
KL to N(0, I) ("kl_dims", zeros for a plain autoencoder), and the Gaussian likelihood's
log standard deviation per value ("log_sigma": learned unless `sigma` fixes it). The
likelihood itself, the KL's weight and its schedule are the autoencoder task's
(`dlexp/tasks/autoencoder.py`); the model declares `task = "autoencoder"`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlexp.models.layers import DenseStack, get_activation

LIKELIHOODS = ("auto", "bernoulli", "gaussian")


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
        likelihood: str = "auto",
        sigma: float | None = None,
        free_bits: float = 0.0,
        kl_warmup_steps: int = 0,
        activation: str = "relu",
        dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"model.likelihood={likelihood!r} is not known; choose one of {', '.join(LIKELIHOODS)}")
        if sigma is not None and sigma <= 0:
            raise ValueError(f"model.sigma={sigma} must be positive (or null: learned)")
        if free_bits < 0 or kl_warmup_steps < 0:
            raise ValueError("model.free_bits and model.kl_warmup_steps must be at least 0")
        self.shape, self.latent, self.variational = tuple(int(s) for s in in_shape), int(latent), bool(variational)
        act = get_activation(activation)
        d = math.prod(self.shape)
        self.encoder = DenseStack(d, hidden, act=act, dropout=dropout, rngs=rngs)
        self.code = nnx.Linear(self.encoder.d_out, self.latent * (2 if self.variational else 1), rngs=rngs)
        self.decoder = DenseStack(self.latent, list(hidden)[::-1], act=act, dropout=dropout, rngs=rngs)
        self.recon = nnx.Linear(self.decoder.d_out, d, rngs=rngs)
        # the Gaussian likelihood's spread per value: a parameter unless fixed (unused under Bernoulli)
        self.log_sigma = nnx.Param(jnp.zeros(d)) if sigma is None else None
        self.sigma = sigma
        self.options = {
            "beta": float(beta) if self.variational else 0.0,
            "likelihood": likelihood,
            "sigma": sigma,
            "free_bits": float(free_bits),
            "kl_warmup_steps": int(kl_warmup_steps),
            "variational": self.variational,
            "latent": self.latent,
        }
        self.deterministic = False  # model.train() / model.eval() switch this, as for dropout

    def task_options(self) -> dict:
        return dict(self.options)

    def encode(self, x, rngs=None) -> tuple[jax.Array, jax.Array]:
        """(mean, log-variance) of the code; the log-variance is 0 for a plain autoencoder."""
        h = self.code(self.encoder(x.reshape(x.shape[0], -1), rngs=rngs))
        if not self.variational:
            return h, jnp.zeros_like(h)
        mean, logvar = jnp.split(h, 2, axis=-1)
        return mean, jnp.clip(logvar, -10.0, 10.0)

    def decode(self, z, rngs=None) -> jax.Array:
        """The decoder's raw output, x-shaped (Bernoulli: logits)."""
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
        kl_dims = 0.5 * (jnp.exp(logvar) + mean**2 - 1.0 - logvar) if self.variational else jnp.zeros_like(mean)
        log_sigma = self.log_sigma[...] if self.log_sigma is not None else jnp.full(self.recon.out_features, 0.0)
        if self.sigma is not None:
            log_sigma = log_sigma + math.log(self.sigma)
        return {"recon": self.decode(z, rngs=rngs), "code": mean, "kl_dims": kl_dims, "log_sigma": log_sigma}
