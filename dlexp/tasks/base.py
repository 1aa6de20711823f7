"""The pure step functions every supervised task shares.

A model is split once (`nnx.split`) into a static graphdef and pure dicts of arrays
(params, and `rest`: batch statistics and any other non-parameter state). The steps
below are plain functions of those dicts, so the trainer can jit them, scan them,
shard them over a mesh or vmap them without NNX graph traversal on every call.

`StepOptions` holds what every task's step shares: L1 / L2 penalties on the kernels
(added to the training loss, not to the reported one) and the compute precision
(bfloat16: the forward and backward pass run on bfloat16 copies of the params, the
batch and the batch statistics; params, gradients and optimizer state stay float32).

Sample weights (dataset.weight) come in the batch's y as {"target": y, "weight": w}
(`unpack_targets`). The training loss is then sum(w * loss) / sum(w) over the batch,
normalized so the learning rate does not depend on the weights' scale, and the metric
sums are weighted by w; without weights the step is the plain mean, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dlexp.models.split import SplitModel


@dataclass(frozen=True)
class StepOptions:
    l1: float = 0.0  # times sum |w| over every `kernel` (dense, conv, attention, recurrent weights)
    l2: float = 0.0  # times sum w^2 over the same kernels (biases, norms, embeddings are not penalized)
    compute_dtype: str = "float32"  # float32 | bfloat16


@dataclass(frozen=True, kw_only=True)
class Task:
    """Loss and metrics of one kind of problem; see classification.py / regression.py."""

    opts: StepOptions = StepOptions()
    name: ClassVar[str] = "task"
    metric_names: ClassVar[tuple[str, ...]] = ()  # what objective.metric may name (val/<name>)

    def targets(self, x, y):  # what the loss compares outputs with (an autoencoder: x)
        return y

    def inputs(self, x, y):  # what the model reads (seq2seq: the source and, for teacher forcing, the target)
        return x

    def for_data(self, scale: str | None) -> Task:
        """This task fitted to the data's scaling (dataset.scale): a VAE's `auto` likelihood."""
        return self

    def loss(self, outputs, targets):  # per-example loss [batch]
        raise NotImplementedError

    def sums(self, losses, outputs, targets, weights) -> dict:  # metric sums (device)
        raise NotImplementedError

    def train_sums(
        self, losses, outputs, targets, weights
    ) -> dict:  # a train step's sums: `sums` unless cheaper ones do
        return self.sums(losses, outputs, targets, weights)

    def finalize(self, sums) -> dict[str, float]:  # sums -> numbers (host)
        raise NotImplementedError

    # A task with another state or update (a GAN's two nets) overrides these three.
    def hyperparameters(self) -> dict[str, float]:
        """The loss's vectorizable values that are on (non-zero): the state holds them as arrays
        (`state["hyper"]`), so copies of one program may each have their own."""
        values = {"l1": self.opts.l1, "l2": self.opts.l2}
        return {k: float(v) for k, v in values.items() if v}

    def init_state(self, sm: SplitModel, tx) -> dict:
        state = {"params": sm.params, "rest": sm.rest, "opt": tx.init(sm.params), "step": jnp.zeros((), jnp.int32)}
        return with_hyper(state, self.hyperparameters())

    def train_losses(self, losses, outputs, targets, hyper: dict):
        """The per-example loss the gradient follows: `losses` (the reported one) unless a
        training-only term (label smoothing, a KL warm-up) changes it. `hyper` also holds
        "step", the state's update count."""
        return losses

    def make_train_step(self, sm: SplitModel, tx, axis_name: str | None = None) -> Callable:
        return make_train_step(self, sm, tx, axis_name)

    def make_eval_step(self, sm: SplitModel) -> Callable:
        return make_eval_step(self, sm)


# ---------------------------------------------------------------------------- precision, penalties


def cast_floats(tree, dtype):
    """Floating leaves of `tree` as `dtype` (integers, keys and bools untouched)."""
    dtype = jnp.dtype(dtype)
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def apply(graphdef, params, rest, fn: Callable, dtype: str = "float32"):
    """fn(model) on the model merged from pure dicts, computed in `dtype`.

    Returns (fn's output with float32 leaves, the model's new `rest` in the dtypes of
    the old one), so a bfloat16 forward pass never changes the state's dtypes.
    """
    if dtype != "float32":  # scalar state (a dropout `Rate`) stays float32: a setting, not an activation
        params = cast_floats(params, dtype)
        rest_in = jax.tree.map(lambda a: a if jnp.ndim(a) == 0 else cast_floats(a, dtype), rest)
    else:
        rest_in = rest
    model = nnx.merge(graphdef, params, rest_in)
    out = fn(model)
    _, _, rest_state = nnx.split(model, nnx.Param, ...)
    new_rest = nnx.to_pure_dict(rest_state)
    new_rest = jax.tree.map(lambda new, old: new.astype(old.dtype), new_rest, rest)
    return cast_floats(out, jnp.float32), new_rest


def with_hyper(state: dict, hyper: dict[str, float]) -> dict:
    """`state` holding the loss hyperparameters `hyper` (none: no "hyper" entry)."""
    if not hyper:
        return {k: v for k, v in state.items() if k != "hyper"}
    return {**state, "hyper": {k: jnp.asarray(v, jnp.float32) for k, v in hyper.items()}}


def penalty(params, hyper: dict):
    """hyper["l1"] * sum |w| + hyper["l2"] * sum w^2 over the kernels of `params` (a term that is
    off is not computed)."""
    if "l1" not in hyper and "l2" not in hyper:
        return 0.0
    kernels = [
        w for path, w in jax.tree_util.tree_leaves_with_path(params) if getattr(path[-1], "key", None) == "kernel"
    ]
    l1 = hyper["l1"] * sum(jnp.sum(jnp.abs(w)) for w in kernels) if "l1" in hyper else 0.0
    l2 = hyper["l2"] * sum(jnp.sum(w**2) for w in kernels) if "l2" in hyper else 0.0
    return l1 + l2


def _forward(graphdef, params, rest, x, key, takes_rngs: bool, dtype: str = "float32"):
    if dtype != "float32":
        x = cast_floats(x, dtype)

    def call(model):
        return model(x, rngs=nnx.Rngs(dropout=key)) if takes_rngs and key is not None else model(x)

    return apply(graphdef, params, rest, call, dtype)


# ---------------------------------------------------------------------------- sample weights


def unpack_targets(y):
    """(targets, sample weights or None): the loader hands {"target", "weight"} when the data
    set has a weight column (`dlexp.data.loader.train_targets`), the bare targets otherwise."""
    if isinstance(y, dict):
        return y["target"], y["weight"]
    return y, None


def weight_total(w, axis_name: str | None = None):
    """What a weighted batch loss divides by: sum(w) over the global batch. Under pmap each
    replica holds a slice and the gradients are averaged, so a replica divides by the mean
    of the replicas' sums. A batch whose weights are all 0 divides by 1 (its loss is 0)."""
    total = jnp.sum(w)
    if axis_name is not None:
        total = jax.lax.pmean(total, axis_name)
    return jnp.where(total > 0, total, 1.0)


# ---------------------------------------------------------------------------- the steps


def make_train_step(
    task: Task, sm: SplitModel, tx: optax.GradientTransformation, axis_name: str | None = None
) -> Callable:
    """(state, x, y, key, norm=True) -> (state, metric sums): one optimizer update on one batch.

    Under `pmap`, `axis_name` names the device axis: gradients are averaged and
    metric sums added across it, so every replica applies the same update.
    `norm`: whether this step takes its gradient norm (`grad_norm_of`).
    """
    opts = task.opts

    def train_step(state, x, y, key, norm=True):
        y, w = unpack_targets(y)
        targets = task.targets(x, y)
        total = None if w is None else weight_total(w, axis_name)

        hyper = state.get("hyper", {})

        def loss_fn(params):
            inputs = task.inputs(x, y)
            out, rest = _forward(sm.train_def, params, state["rest"], inputs, key, sm.takes_rngs, opts.compute_dtype)
            losses = task.loss(out, targets)
            trained = task.train_losses(losses, out, targets, {**hyper, "step": state["step"]})
            mean = jnp.mean(trained) if w is None or total is None else jnp.sum(w * trained) / total
            return mean + penalty(params, hyper), (losses, out, rest)

        (_, (losses, out, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
            rest = jax.lax.pmean(rest, axis_name)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        sums = task.train_sums(losses, out, targets, jnp.ones(losses.shape, jnp.float32) if w is None else w)
        if axis_name is not None:
            sums = jax.lax.psum(sums, axis_name)
        sums.update(grad_norm_of(grads, norm))
        return {**state, "params": params, "rest": rest, "opt": opt, "step": state["step"] + 1}, sums

    return train_step


def grad_norm_of(grads, norm) -> dict:
    """{"grad_norm": the global gradient norm or 0, "grad_norm_n": 1 or 0}. The norm is one
    more pass over every gradient, so the loop takes it only where it is read (a log step,
    or every step when the non-finite guard needs it). `norm`: a Python bool, or a traced
    one (a `lax.cond` then skips the pass)."""
    zero = lambda g: jnp.zeros((), jnp.float32)  # noqa: E731
    if isinstance(norm, bool):
        value = optax.tree.norm(grads) if norm else zero(grads)
    else:
        value = jax.lax.cond(norm, optax.tree.norm, zero, grads)
    return {"grad_norm": value, "grad_norm_n": jnp.asarray(norm, jnp.int32)}


def make_eval_step(task: Task, sm: SplitModel) -> Callable:
    """(params, rest, x, y, weights, index) -> metric sums, in eval mode (no dropout, running
    stats). index: the batch's place in its split, for a task that draws its own fixed
    randomness per batch (a generator's noise); a supervised step does not need it."""

    def eval_step(params, rest, x, y, weights, index=0):
        targets = task.targets(x, y)
        out, _ = _forward(sm.eval_def, params, rest, task.inputs(x, y), None, sm.takes_rngs, task.opts.compute_dtype)
        losses = task.loss(out, targets)
        return task.sums(losses, out, targets, weights)

    return eval_step


def make_predict(sm: SplitModel, dtype: str = "float32") -> Callable:
    """(params, rest, x) -> the model's outputs in eval mode: what plots and inspection look at."""

    def predict(params, rest, x):
        return _forward(sm.eval_def, params, rest, x, None, sm.takes_rngs, dtype)[0]

    return predict
