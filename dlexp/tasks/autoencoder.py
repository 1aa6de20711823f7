"""Autoencoders: reconstruct the input; a VAE adds the KL of its code to N(0, I).

The loss per example is the summed squared error over the input's values (a
Gaussian likelihood up to constants) plus `beta` times the KL, the negative ELBO for
a VAE with beta = 1. Reported: `loss`, `recon` (that summed error), `kl`, and `mse`
(per value, in the prepared data's scale). The model contract: `model(x, rngs=...)`
returns {"recon": x-shaped, "kl": [batch]} (dlexp.models.Autoencoder); labels unused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp

from dlexp.metrics import divisor
from dlexp.models.split import SplitModel
from dlexp.tasks.base import Task, make_predict


@dataclass(frozen=True, kw_only=True)
class Reconstruction(Task):
    beta: float = 1.0  # the KL's weight (a VAE's beta); a plain autoencoder's KL is 0
    name = "autoencoder"
    metric_names = ("loss", "recon", "kl", "mse")

    def targets(self, x, y):
        return x

    def _recon(self, out, x):
        err = (out["recon"].reshape(x.shape) - x.astype(jnp.float32)) ** 2
        return err.reshape(err.shape[0], -1).sum(axis=1)

    def loss(self, out, x):
        return self._recon(out, x) + self.beta * out["kl"]

    def sums(self, losses, out, x, weights):
        return {
            "loss": jnp.sum(losses * weights),
            "recon": jnp.sum(self._recon(out, x) * weights),
            "kl": jnp.sum(out["kl"] * weights),
            "count": jnp.sum(weights),
            "values": jnp.sum(weights) * math.prod(x.shape[1:]),
        }

    def finalize(self, sums) -> dict[str, float]:
        n = divisor(sums["count"])
        return {
            "loss": float(sums["loss"]) / n,
            "recon": float(sums["recon"]) / n,
            "kl": float(sums["kl"]) / n,
            "mse": float(sums["recon"]) / divisor(sums["values"]),
        }

    def make_reconstruct(self, sm: SplitModel) -> Callable:
        """(params, rest, x) -> reconstructions in eval mode (a VAE decodes its mean code)."""
        predict = make_predict(sm)
        return lambda params, rest, x: predict(params, rest, x)["recon"]
