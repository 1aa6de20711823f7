"""A task's pure steps composed with an execution layout: the programs the loop calls.

The task gives `train_step(state, x, y, key, norm)` and `eval_step(params, rest, x, y, w, index)`.
What every layout shares is added here, inside the compiled program: the batch gather,
augmentation, per-step keys, the non-finite guard, fused steps (`lax.scan`) and metric
sums. Then the steps are mapped onto the layout:

  mesh    jax.jit; batch rows sharded over "data", the state replicated (one device: a mesh of one)
  pmap    jax.pmap; one replica per device, gradients averaged by the task over "data"
  copies  jax.jit of jax.vmap over a leading axis of independent states, keys and batch orders

A copy of a copies program computes what the single run with its seed computes. The
train program donates the state and the metric accumulator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlexp.loop import xla_cpu
from dlexp.loop.guards import accumulate, guard_step
from dlexp.metrics import add_sums
from dlexp.models.split import SplitModel, count_params
from dlexp.parallel import Layout, split_for_devices
from dlexp.tasks import Task


@dataclass(frozen=True)
class Programs:
    """The compiled pieces of one run."""

    train: Callable  # (state, acc, args, keys, active, logs, *, n) -> (state, acc, token to wait on)
    evaluate: Callable[[Any, Any, str], list[dict]]  # (params, rest, split) -> each copy's metrics
    train_zeros: Callable[[], Any]  # a fresh train-metric accumulator
    keep_best: Callable[[list[bool], Any, Any], Any]  # (improved per copy, (params, rest), best so far) -> best
    steps_per_call: int
    bounded: bool  # wait for a call before queuing the next (xla_cpu.bounded_dispatch)


def root_keys(seeds: list[int], layout: Layout) -> jax.Array:
    """Each copy's dropout root (a single run: one key): fold_in(key(seed), 1), as data and init
    draw from the seed itself."""
    keys = [jax.random.fold_in(jax.random.key(s), 1) for s in seeds]
    return jax.device_put(jnp.stack(keys), layout.batch) if layout.kind == "copies" else keys[0]


def build_programs(
    task: Task,
    sm: SplitModel,
    tx: Any,
    layout: Layout,
    *,
    loader: Any,
    evals: dict,
    augment: Callable | None,
    skip_nonfinite: bool,
    steps_per_call: Any,
    conv: bool,
    cpu_kernels: str,
    total_steps: int,
) -> Programs:
    platform, pmap, copies = layout.platform, layout.is_pmap, layout.kind == "copies"
    # Copies always undo a bad update (the copy is then marked failed or counts a skip), so
    # their guard, like the skip policy's, reads the gradient norm of every step.
    undo = skip_nonfinite or copies
    train_step = task.make_train_step(sm, tx, axis_name="data" if pmap else None)
    eval_step = task.make_eval_step(sm)
    shard = layout.batch if layout.kind == "mesh" and layout.num_devices > 1 else None  # where rows are gathered

    def one_step(state, acc, args, key, active, i, norm):
        xb, yb = loader.batch(args, i, shard=shard)
        if pmap:  # each replica takes its slice of the global batch
            xb, yb = split_for_devices(xb, layout.num_devices), split_for_devices(yb, layout.num_devices)
        elif shard is not None:
            xb, yb = jax.lax.with_sharding_constraint((xb, yb), shard)
        # Per-step key from the step number: a resumed run draws what an uninterrupted one would.
        key = jax.random.fold_in(key, state["step"])
        if pmap:
            key = jax.random.fold_in(key, jax.lax.axis_index("data"))
        if augment is not None:
            xb = augment(xb, jax.random.fold_in(key, 1))
        new_state, sums = train_step(state, xb, yb, key, norm=True if undo else norm)
        new_state, sums = guard_step(state, new_state, sums, skip=undo, active=active)
        return new_state, accumulate(acc, sums)

    def calls(state, acc, args, key, active, logs, *, n: int):
        """n steps in one call. The last takes the gradient norm when the call ends at a log step
        (`logs`, traced: one program per call length); the others never (they are not logged)."""
        if n > 1:
            step = functools.partial(one_step, args=args, key=key, active=active, norm=False)
            unroll = xla_cpu.scan_unroll(n - 1, platform=platform, conv=conv)
            (state, acc), _ = jax.lax.scan(
                lambda c, i: (step(*c, i=i), None), (state, acc), jnp.arange(n - 1), unroll=unroll
            )
        state, acc = one_step(state, acc, args, key, active, n - 1, norm=logs)
        return state, acc, state["step"] + 0  # not donated: the loop may wait on it

    options = xla_cpu.compiler_options(cpu_kernels, platform=platform, pmap=pmap)
    if pmap:

        @functools.cache
        def pmapped(n: int):
            return jax.pmap(
                functools.partial(calls, n=n),
                axis_name="data",
                in_axes=(0, 0, None, None, None, None),
                donate_argnums=(0, 1),
            )

        def train(state, acc, args, key, active, logs, *, n):
            return pmapped(n)(state, acc, args, key, active, logs)
    elif copies:

        def vmapped(state, acc, args, key, active, logs, *, n):
            one = functools.partial(calls, n=n)
            return jax.vmap(one, in_axes=(0, 0, loader.copy_axes, 0, 0, None))(state, acc, args, key, active, logs)

        train = jax.jit(vmapped, static_argnames="n", donate_argnums=(0, 1), compiler_options=options)
    else:
        train = jax.jit(calls, static_argnames="n", donate_argnums=(0, 1), compiler_options=options)

    # ------------------------------------------------------------------ evaluation
    def eval_batch(acc, params, rest, x, y, w, b):
        xb, yb, wb = x[b], y[b], w[b]
        if not copies:
            xb, yb, wb = jax.lax.with_sharding_constraint((xb, yb, wb), layout.batch)
        return add_sums(acc, eval_step(params, rest, xb, yb, wb, b))

    in_axes = (0, 0, 0, None, None, None, None)
    eval_fn = jax.jit(
        jax.vmap(eval_batch, in_axes=in_axes) if copies else eval_batch, donate_argnums=0, compiler_options=options
    )
    lead = (layout.num_copies,) if copies else ()
    eval_zeros = zeros_maker(
        jax.eval_shape(eval_step, sm.params, sm.rest, *evals["val"].example()),
        layout.batch if copies else layout.replicated,
        lead,
    )

    def evaluate(params, rest, split: str) -> list[dict]:
        es = evals[split]
        acc = eval_zeros()
        for b in range(es.num_batches):
            acc = eval_fn(acc, params, rest, es.x, es.y, es.w, b)
        sums = jax.device_get(acc)
        return [task.finalize(s) for s in (layout.per_copy(sums) if copies else [sums])]

    # ------------------------------------------------------------------ accumulators, best state, fusing
    plain_step = task.make_train_step(sm, tx)  # the same sums, for shapes only
    one_state = jax.eval_shape(lambda: task.init_state(sm, tx))
    batch = loader.example()
    key0 = jax.random.key(0)
    sums_shape = jax.eval_shape(
        lambda s, xy: guard_step(s, *plain_step(s, *xy, key0, norm=True), skip=False)[1], one_state, batch
    )
    train_lead = (layout.num_devices,) if pmap else lead
    train_zeros = zeros_maker(sums_shape, layout.state_sharding, train_lead)

    @jax.jit
    def where_improved(improved, new, old):
        return jax.tree.map(
            lambda a, b: jnp.where(improved.reshape(improved.shape + (1,) * (a.ndim - improved.ndim)), a, b), new, old
        )

    def keep_best(improved: list[bool], new: Any, old: Any) -> Any:
        mask = np.asarray(improved) if copies else np.asarray(improved[0])
        return where_improved(mask, new, new if old is None else old)

    # About 6 operations per parameter and example (forward and backward) for a dense model.
    run_flops = 6.0 * count_params(sm.params) * loader.batch_size * total_steps * layout.num_copies
    k = xla_cpu.steps_per_call(
        steps_per_call, platform=platform, conv=conv, devices=layout.num_devices, run_flops=run_flops
    )
    return Programs(
        train,
        evaluate,
        train_zeros,
        keep_best,
        k,
        xla_cpu.bounded_dispatch(platform=platform, devices=layout.num_devices),
    )


def zeros_maker(shapes: Any, sharding: Any, lead: tuple = ()) -> Callable[[], Any]:
    """Fresh accumulators shaped like `shapes` with `lead` axes in front, made by one compiled
    call (a reset per leaf would be a dispatch and a transfer each, between two train calls)."""
    return jax.jit(
        lambda: jax.tree.map(lambda s: jnp.zeros((*lead, *s.shape), s.dtype), shapes), out_shardings=sharding
    )
