"""Autoencoders: reconstruct the input; a VAE adds the KL of its code to N(0, I).

The loss per example is the negative log-likelihood of the input under the decoder's
output, in nats, plus `beta` times the KL: the negative ELBO for a VAE with beta = 1.
- `likelihood: bernoulli` (binary cross-entropy of the logits) suits data in [0, 1];
  `gaussian` (a learned or fixed spread per value) any other; `auto` picks Bernoulli for
  data scaled to [0, 1] (dataset.scale minmax or unit), else Gaussian. A summed squared
  error with unit variance is the Gaussian with sigma = 1: weak next to the KL on small
  inputs, which lets a VAE's posterior collapse onto the prior.
- Training only: `kl_warmup_steps` ramps the KL's weight from 0 to beta; `free_bits`
  charges each code dimension at least that many nats, so using a dimension is free
  up to there.

Reported: `loss`, `recon` (the NLL), `kl`, `elbo` and `bpd` (bits per value), `mse`
of the mean reconstruction (per value, in the prepared data's scale) beside
`baseline_mse` (predicting the split's mean image for every input: a collapsed VAE
sits there), and `active_units` (code dimensions whose posterior mean varies over the
split by more than 0.01: Burda et al.'s test). With a judge (`dlexp.quality`) a VAE's
samples from the prior are measured like a GAN's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlexp.metrics import divisor
from dlexp.models.split import SplitModel
from dlexp.quality.metrics import QUALITY_METRICS, quality_metrics

if TYPE_CHECKING:
    from dlexp.quality.judge import Judge

from dlexp.tasks.base import Task, apply, make_predict

ACTIVE_VARIANCE = 0.01  # a code dimension is active when its posterior mean's variance exceeds this
SAMPLE_SEED = 1  # prior samples measured by the judge: the same at every evaluation
UNIT_SCALES = ("minmax", "unit")  # dataset.scale values that put the data in [0, 1]


@dataclass(frozen=True, kw_only=True)
class Reconstruction(Task):
    beta: float = 1.0  # the KL's weight (a VAE's beta); a plain autoencoder's KL is 0
    likelihood: str = "gaussian"  # bernoulli | gaussian (auto is resolved by `for_data`)
    sigma: float | None = None  # a fixed Gaussian spread; None: the model's learned one
    free_bits: float = 0.0
    kl_warmup_steps: int = 0
    variational: bool = False
    latent: int = 0
    judge: Judge | None = field(default=None, compare=False)  # measures prior samples (dlexp.quality)
    name = "autoencoder"
    metric_names = ("loss", "recon", "kl", "elbo", "bpd", "mse", "baseline_mse", "active_units", *QUALITY_METRICS)

    def for_data(self, scale: str | None) -> Reconstruction:
        """This task with `likelihood: auto` resolved by the data's scaling."""
        if self.likelihood != "auto":
            return self
        return replace(self, likelihood="bernoulli" if scale in UNIT_SCALES else "gaussian")

    def targets(self, x, y):
        return x

    # ------------------------------------------------------------------ likelihood
    def mean_of(self, raw):
        """The reconstruction itself from the decoder's raw output (Bernoulli: its logits)."""
        return jax.nn.sigmoid(raw) if self.likelihood == "bernoulli" else raw

    def nll(self, out, x):
        """-log p(x | z) in nats per example, summed over the input's values."""
        x = x.astype(jnp.float32)
        raw = out["recon"].reshape(x.shape)
        if self.likelihood == "bernoulli":
            per_value = optax.sigmoid_binary_cross_entropy(raw, jnp.clip(x, 0.0, 1.0))
        else:
            log_sigma = out["log_sigma"].reshape(x.shape[1:])
            per_value = 0.5 * ((x - raw) * jnp.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
        return per_value.reshape(x.shape[0], -1).sum(axis=1)

    def loss(self, out, x):
        return self.nll(out, x) + self.beta * out["kl_dims"].sum(axis=-1)

    def train_losses(self, losses, out, x, hyper: dict):
        if not (self.free_bits or self.kl_warmup_steps):
            return losses
        kl = out["kl_dims"]
        if self.free_bits:  # a dimension whose batch-mean KL is under the floor costs the floor, flat
            kl = jnp.where(kl.mean(axis=0) > self.free_bits, kl, self.free_bits)
        weight = self.beta
        if self.kl_warmup_steps:
            weight = weight * jnp.minimum(1.0, hyper["step"].astype(jnp.float32) / self.kl_warmup_steps)
        return self.nll(out, x) + weight * kl.sum(axis=-1)

    # ------------------------------------------------------------------ metrics
    def sums(self, losses, out, x, weights):
        x = x.astype(jnp.float32)
        flat = x.reshape(x.shape[0], -1)
        err = (self.mean_of(out["recon"]).reshape(x.shape) - x) ** 2
        w = weights.astype(jnp.float32)
        return {
            "loss": jnp.sum(losses * w),
            "recon": jnp.sum(self.nll(out, x) * w),
            "kl": jnp.sum(out["kl_dims"].sum(axis=-1) * w),
            "sq_err": jnp.sum(err.reshape(x.shape[0], -1).sum(axis=1) * w),
            "x": jnp.einsum("b,bd->d", w, flat),
            "xx": jnp.einsum("b,bd->d", w, flat * flat),
            "code": jnp.einsum("b,bl->l", w, out["code"]),
            "code_sq": jnp.einsum("b,bl->l", w, out["code"] ** 2),
            "count": jnp.sum(w),
            "values": jnp.sum(w) * flat.shape[1],
        }

    def train_sums(self, losses, out, x, weights):
        keep = ("loss", "recon", "kl", "sq_err", "count", "values")  # per-split statistics are val / test's
        sums = self.sums(losses, out, x, weights)
        return {k: sums[k] for k in keep}

    def finalize(self, sums) -> dict[str, float]:
        n = divisor(sums["count"])
        recon, kl = float(sums["recon"]) / n, float(sums["kl"]) / n
        values = float(sums["values"]) / n  # per example
        out = {"loss": float(sums["loss"]) / n, "recon": recon, "kl": kl, "elbo": -(recon + kl)}
        out["bpd"] = (recon + kl) / (max(values, 1.0) * math.log(2))
        out["mse"] = float(sums["sq_err"]) / divisor(sums["values"])
        if "x" not in sums:  # a train window: no per-split statistics
            return out
        x_mean = np.asarray(sums["x"], np.float64) / n
        out["baseline_mse"] = float(np.mean(np.asarray(sums["xx"], np.float64) / n - x_mean**2))
        code_mean = np.asarray(sums["code"], np.float64) / n
        variance = np.asarray(sums["code_sq"], np.float64) / n - code_mean**2
        out["active_units"] = float(np.sum(variance > ACTIVE_VARIANCE))
        if self.judge is not None and "fake" in sums:
            out.update(quality_metrics(self.judge, sums["real"], sums["fake"]))
        return out

    # ------------------------------------------------------------------ eval: with prior samples
    def make_eval_step(self, sm: SplitModel) -> Callable:
        from dlexp.tasks.base import make_eval_step

        plain = make_eval_step(self, sm)
        if self.judge is None or not self.variational:
            return plain
        judge = self.judge

        def eval_step(params, rest, x, y, weights, index=0):
            sums = plain(params, rest, x, y, weights)
            z = jax.random.normal(jax.random.fold_in(jax.random.key(SAMPLE_SEED), index), (x.shape[0], self.latent))
            fake, _ = apply(sm.eval_def, params, rest, lambda m: self.mean_of(m.decode(z)))
            return {**sums, "real": judge.sums(x, weights), "fake": judge.sums(fake, weights)}

        return eval_step

    def make_reconstruct(self, sm: SplitModel) -> Callable:
        """(params, rest, x) -> reconstructions in eval mode (a VAE decodes its mean code)."""
        predict = make_predict(sm)
        return lambda params, rest, x: self.mean_of(predict(params, rest, x)["recon"])

    def make_sampler(self, sm: SplitModel) -> Callable:
        """(params, rest, z) -> examples decoded from codes z (a VAE's samples from its prior)."""
        return lambda params, rest, z: apply(sm.eval_def, params, rest, lambda m: self.mean_of(m.decode(z)))[0]
