"""A GAN: two nets, two optimizer states, alternating updates in one step.

Each train step first updates the discriminator on a real batch (label 1) and a batch
generated from fresh noise (label 0, the generator held fixed), then the generator
against the updated discriminator with the non-saturating loss (its samples labelled
1). Both nets use the run's optimizer chain, each with its own state (`opt["d"]`,
`opt["g"]`). The model contract: `model(x, rngs=...)` is the discriminator's logit,
`model.generate(z)` a batch of samples, the params split into `generator` and
`discriminator` subtrees (dlexp.models.GAN). Labels of the data set are not used, nor
sample weights (a run with dataset.weight is refused rather than silently unweighted).
The losses tell whether the game is balanced, not how good the samples are. With a judge
(`dlexp.quality`: a classifier of the data's labels) every evaluation also measures the
samples: `fid` (Fréchet distance of the judge's features of generated and train examples;
`real_fid`: the split's own real examples, the floor), `confidence` and `coverage` (the
entropy of the judge's predicted classes; log K is every class alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dlexp.errors import DataError
from dlexp.metrics import divisor
from dlexp.models.split import SplitModel
from dlexp.quality.metrics import QUALITY_METRICS, quality_metrics

if TYPE_CHECKING:
    from dlexp.quality.judge import Judge

from dlexp.tasks.base import Task, apply, cast_floats, grad_norm_of

EVAL_NOISE_SEED = 0  # evaluation draws the same noise every time: its losses are comparable across steps


def bce(logits, label: float):
    return optax.sigmoid_binary_cross_entropy(logits.reshape(-1), jnp.full(logits.shape[0], label))


@dataclass(frozen=True, kw_only=True)
class GANTask(Task):
    latent: int
    judge: Judge | None = field(default=None, compare=False)  # measures the samples (dlexp.quality)
    name = "gan"
    metric_names = ("loss", "d_loss", "g_loss", "d_real", "d_fake", *QUALITY_METRICS)

    def hyperparameters(self) -> dict[str, float]:  # no penalty terms: the two losses are the game's
        return {}

    def init_state(self, sm: SplitModel, tx) -> dict:
        p = sm.params
        opt = {"d": tx.init(p["discriminator"]), "g": tx.init(p["generator"])}
        return {"params": p, "rest": sm.rest, "opt": opt, "step": jnp.zeros((), jnp.int32)}

    def _sums(self, d_real, d_fake, g_fake, w) -> dict:
        d_loss, g_loss = bce(d_real, 1.0) + bce(d_fake, 0.0), bce(g_fake, 1.0)
        return {
            "loss": jnp.sum((d_loss + g_loss) * w),
            "d_loss": jnp.sum(d_loss * w),
            "g_loss": jnp.sum(g_loss * w),
            "d_real": jnp.sum(jax.nn.sigmoid(d_real.reshape(-1)) * w),  # mean D(real): 1 = sure it is real
            "d_fake": jnp.sum(jax.nn.sigmoid(d_fake.reshape(-1)) * w),
            "count": jnp.sum(w),
        }

    def finalize(self, sums) -> dict[str, float]:
        n = divisor(sums["count"])
        out = {k: float(sums[k]) / n for k in ("loss", "d_loss", "g_loss", "d_real", "d_fake")}
        if self.judge is not None and "fake" in sums:
            out.update(quality_metrics(self.judge, sums["real"], sums["fake"]))
        return out

    def make_train_step(self, sm: SplitModel, tx, axis_name: str | None = None) -> Callable:
        dtype = self.opts.compute_dtype

        def train_step(state, x, y, key, norm=True):
            if isinstance(y, dict):  # targets with sample weights (dlexp.tasks.base.unpack_targets)
                raise DataError(
                    "dataset.weight is set, but the GAN task does not use sample weights; "
                    "remove dataset.weight (or set it to null)"
                )
            params, opt = state["params"], state["opt"]
            k_zd, k_zg, k_d1, k_d2 = jax.random.split(key, 4)
            x = cast_floats(x, dtype)
            z_d = jax.random.normal(k_zd, (x.shape[0], self.latent))
            z_g = jax.random.normal(k_zg, (x.shape[0], self.latent))

            def d_loss_fn(pd):
                def run(m):
                    fake = jax.lax.stop_gradient(m.generate(z_d.astype(x.dtype)))
                    return m(x, rngs=nnx.Rngs(dropout=k_d1)), m(fake, rngs=nnx.Rngs(dropout=k_d1))

                (real, fake), rest = apply(sm.train_def, {**params, "discriminator": pd}, state["rest"], run, dtype)
                return jnp.mean(bce(real, 1.0) + bce(fake, 0.0)), (real, fake, rest)

            (_, (d_real, d_fake, rest)), g_d = jax.value_and_grad(d_loss_fn, has_aux=True)(params["discriminator"])
            if axis_name is not None:
                g_d = jax.lax.pmean(g_d, axis_name)
            upd, opt_d = tx.update(g_d, opt["d"], params["discriminator"])
            params = {**params, "discriminator": optax.apply_updates(params["discriminator"], upd)}

            def g_loss_fn(pg):
                run = lambda m: m(m.generate(z_g.astype(x.dtype)), rngs=nnx.Rngs(dropout=k_d2))  # noqa: E731
                g_fake, new_rest = apply(sm.train_def, {**params, "generator": pg}, rest, run, dtype)
                return jnp.mean(bce(g_fake, 1.0)), (g_fake, new_rest)

            (_, (g_fake, rest)), g_g = jax.value_and_grad(g_loss_fn, has_aux=True)(params["generator"])
            if axis_name is not None:
                g_g = jax.lax.pmean(g_g, axis_name)
                rest = jax.lax.pmean(rest, axis_name)
            upd, opt_g = tx.update(g_g, opt["g"], params["generator"])
            params = {**params, "generator": optax.apply_updates(params["generator"], upd)}

            sums = self._sums(d_real, d_fake, g_fake, jnp.ones(x.shape[0], jnp.float32))
            if axis_name is not None:
                sums = jax.lax.psum(sums, axis_name)
            sums.update(grad_norm_of({"d": g_d, "g": g_g}, norm))
            new = {"params": params, "rest": rest, "opt": {"d": opt_d, "g": opt_g}, "step": state["step"] + 1}
            return new, sums

        return train_step

    def make_eval_step(self, sm: SplitModel) -> Callable:
        dtype = self.opts.compute_dtype

        def eval_step(params, rest, x, y, weights, index=0):
            # fixed noise, its own for each batch of the split: the same samples at every evaluation
            key = jax.random.fold_in(jax.random.key(EVAL_NOISE_SEED), index)
            z = jax.random.normal(key, (x.shape[0], self.latent))
            x = cast_floats(x, dtype)

            def run(m):
                fake = m.generate(z.astype(x.dtype))
                return m(x), m(fake), fake

            (d_real, d_fake, fake), _ = apply(sm.eval_def, params, rest, run, dtype)
            sums = self._sums(d_real, d_fake, d_fake, weights)
            if self.judge is not None:
                sums.update(real=self.judge.sums(x, weights), fake=self.judge.sums(fake, weights))
            return sums

        return eval_step

    def make_sampler(self, sm: SplitModel) -> Callable:
        """(params, rest, z) -> generated examples, in eval mode (batch norm on running averages)."""
        return lambda params, rest, z: apply(sm.eval_def, params, rest, lambda m: m.generate(z))[0]
