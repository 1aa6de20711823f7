"""The training loop: devices, batching, cadence, the best state, the final test.

The trainer never knows a loss (the task owns it) and never opens a file (the
writers and hooks do). Read `fit` top to bottom: each banner is one phase of a run.
Everything the loop carries from step to step lives in `Loop`, so a checkpoint of
`Loop` is a checkpoint of the run; hooks (`dlexp/hooks.py`) see it at each event.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlexp.config import enum_value
from dlexp.data import Dataset
from dlexp.data.loader import EvalSet, make_loader
from dlexp.errors import ConfigError, TrainingError
from dlexp.guards import GUARD_KEYS, accumulate, guard_step, nonfinite_message
from dlexp.hooks import Hook
from dlexp.kernels import compiler_options, of_trainer
from dlexp.metrics import add_sums
from dlexp.optim import log_steps, rates_at
from dlexp.parallel import Layout, check_batch, split_for_devices
from dlexp.tasks import Task
from dlexp.tasks.base import SplitModel, count_params, split_model


@dataclass(frozen=True)
class Plan:
    """How many steps a run takes, fixed before anything is compiled."""

    batch_size: int
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    log_every: int

    @property
    def epochs(self) -> float:
        return self.total_steps / self.steps_per_epoch

    def in_epoch(self, step: int, epoch: int) -> int:
        """The step's position within `epoch` (the loaders' start)."""
        return step - epoch * self.steps_per_epoch

    def epoch_after(self, step: int, epoch: int) -> int:
        """The epoch a call that ended at `step` leaves the loop in."""
        return epoch + int(self.in_epoch(step, epoch) >= self.steps_per_epoch)

    def call_length(self, step: int, epoch: int, most: int) -> int:
        """Steps of the next compiled call (at most `most`): a call never crosses an epoch,
        log or eval boundary, so the cadences stay exact for any steps_per_call."""
        return min(most, self.steps_per_epoch - self.in_epoch(step, epoch), self.total_steps - step,
                   self.log_every - step % self.log_every, self.eval_every - step % self.eval_every)

    def crossed(self, step: int, last: int, every: int) -> bool:
        """Whether the steps since `last` reached a multiple of `every` (or the run's end)."""
        return step // every > last // every or step == self.total_steps


def plan_steps(cfg: Any, n_train: int, num_devices: int = 1) -> Plan:
    """Resolves epochs/steps/cadences; a batch larger than the train split is shrunk to it."""
    batch = int(cfg.batch_size)
    if batch < 1:
        raise ConfigError(f"trainer.batch_size={batch} must be at least 1")
    if batch > n_train:
        batch = max(num_devices, n_train // num_devices * num_devices)
    spe = max(1, n_train // batch)
    if cfg.steps is not None:
        if cfg.steps < 1:
            raise ConfigError(f"trainer.steps={cfg.steps} must be at least 1 (or null to train by epochs)")
        total = int(cfg.steps)
    else:
        if cfg.epochs < 1:
            raise ConfigError(f"trainer.epochs={cfg.epochs} must be at least 1")
        total = int(cfg.epochs) * spe
    if cfg.log_every < 1:
        raise ConfigError(f"trainer.log_every={cfg.log_every} must be at least 1")
    check_steps_per_call(cfg.steps_per_call)
    eval_every = int(cfg.eval_every) if cfg.eval_every else spe
    if eval_every < 1:
        raise ConfigError(f"trainer.eval_every={cfg.eval_every} must be at least 1 (or null: each epoch)")
    return Plan(batch, spe, total, eval_every, int(cfg.log_every))


def parse_objective(metric: str, task: Task) -> tuple[str, str]:
    split, _, name = metric.partition("/")
    if split not in ("train", "val") or name not in task.metric_names:
        valid = ", ".join(f"val/{m}" for m in task.metric_names)
        raise ConfigError(f"objective.metric={metric!r} is not a metric of {task.name}; valid: {valid}")
    return split, name


def better(a: float, b: float | None, mode: str) -> bool:
    if b is None or not math.isfinite(b):
        return math.isfinite(a)
    return a < b if mode == "min" else a > b


@dataclass
class Loop:
    """Everything that changes as a run goes: what a checkpoint must hold to resume."""

    state: Any  # the task's state pytree on device (params, rest, opt, step, ...)
    step: int = 0
    epoch: int = 0
    best_value: float | None = None
    best_step: int = -1
    best_val: dict = field(default_factory=dict)
    best_state: Any = None  # (params, rest) of the best evaluation, on device
    last_train: dict = field(default_factory=dict)
    last_val: dict = field(default_factory=dict)
    stop: bool = False  # a hook (early stopping, preemption) ends the loop after this step
    status: str = "running"
    extra: dict = field(default_factory=dict)  # hook and guard state a checkpoint keeps (early stopping, skips)


@dataclass
class Context:
    """What hooks may look at: the parts of the run, fixed for its length."""

    task: Task
    model: SplitModel
    plan: Plan
    layout: Layout
    writers: Any
    objective: tuple[str, str]
    evaluate: Callable[[Any, Any, str], dict]  # (params, rest, split) -> metrics
    data: Dataset


def fit(
    *,
    task: Task,
    model: nnx.Module,
    tx: Any,
    schedule: Callable[[int], float],
    data: Dataset,
    plan: Plan,
    cfg: Any,
    objective: tuple[str, str],
    seed: int,
    layout: Layout,
    writers: Any,
    hooks: Sequence[Any] = (),
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> tuple[dict[str, Any], tuple[Any, Any]]:
    """Trains, evaluates on val at the cadence, keeps the best state, tests it.

    `augment(x_batch, key)`, if given, transforms each training batch inside the step.
    Returns (the summary that summary.json holds, the best (params, rest)).
    """
    t_start = time.perf_counter()
    obj_metric, obj_mode = objective
    obj_split, obj_name = parse_objective(obj_metric, task)
    check_batch(plan.batch_size, layout)

    # ------------------------------------------------------------------ data on device
    K = steps_per_call(cfg.steps_per_call, conv=has_conv(model), devices=layout.num_devices)
    kernels, width = of_trainer(cfg, layout.mesh.devices.flat[0].platform, options=not layout.is_pmap)
    train = make_loader(data, plan.batch_size, seed, layout.replicated, steps_per_call=K)
    evals = {
        s: EvalSet(data.x[s], data.y[s], cfg.eval_batch_size, layout.replicated, multiple=layout.num_devices,
                   weights=data.sample_weights(s))
        for s in ("val", "test")
    }

    # ------------------------------------------------------------------ state
    sm: SplitModel = split_model(model)
    initial = task.init_state(sm, tx)
    loop = Loop(state=layout.place_state(initial))
    n_params = count_params(sm.params)

    # ------------------------------------------------------------------ compiled steps
    pmap = layout.is_pmap
    B = plan.batch_size
    skip_nonfinite = enum_value(cfg.nan_policy) == "skip"
    # The gradient norm is taken at the step each log reports (a pass over every gradient:
    # 5-6% of the mlp's step), at every step when the skip policy's guard needs it (None).
    # A call never crosses a log step (Plan.call_length), so a log step ends its call.
    unmeasured = None if skip_nonfinite else False
    log_step = lambda s: ((s + 1) % plan.log_every == 0) | (s + 1 == plan.total_steps)  # noqa: E731
    train_step = task.make_train_step(sm, tx, axis_name="data" if pmap else None)
    eval_step = task.make_eval_step(sm)
    dropout_key = jax.random.fold_in(jax.random.key(seed), 1)

    shard = None if pmap or layout.num_devices == 1 else layout.batch  # where batch rows are gathered

    def one_step(state, acc, xb, yb, norm):
        if pmap:  # each replica takes its slice of the global batch
            xb, yb = split_for_devices(xb, layout.num_devices), split_for_devices(yb, layout.num_devices)
        else:
            xb = jax.lax.with_sharding_constraint(xb, layout.batch)
            yb = jax.lax.with_sharding_constraint(yb, layout.batch)
        # Per-step key from the step number: a resumed run draws what an uninterrupted one would.
        key = jax.random.fold_in(dropout_key, state["step"])
        if pmap:
            key = jax.random.fold_in(key, jax.lax.axis_index("data"))
        if augment is not None:
            xb = augment(xb, jax.random.fold_in(key, 1))
        new_state, sums = train_step(state, xb, yb, key, norm=norm)
        new_state, sums = guard_step(state, new_state, sums, skip=skip_nonfinite)
        return new_state, accumulate(acc, sums)

    def train_calls(state, acc, args, n: int, logs: bool):
        """`n` consecutive steps in one compiled call (lax.scan over more than one).

        Which step takes its gradient norm: with one step per call, a `lax.cond` on the
        step number picks the log steps on device (one program for every call); a fused
        call ends at a log step when `logs` (static), and then only its last step takes
        the norm (two programs: the cond inside the scan cost the fused mlp 2-5%, and one
        program for every single step avoids a second compile). Such a call runs its last
        LOG_CALL_TAIL steps after the scan. Also returns the step counter as a separate
        (not donated) token, which the loop can wait on to bound how far dispatch runs
        ahead of the devices."""
        if n == 1:
            norm = unmeasured if unmeasured is None else log_step(state["step"])
            state, acc = one_step(state, acc, *train.batch(args, 0, shard=shard), norm)
            return state, acc, state["step"] + 0
        tail = min(n, LOG_CALL_TAIL) if logs and unmeasured is False else 0
        plain = n - tail

        # Each step gathers its own rows inside the loop: its batch is still in cache when
        # the step reads it (gathering all n before the loop: 2-4% slower on the fused mlp).
        def body(carry, i):
            return one_step(*carry, *train.batch(args, i, shard=shard), unmeasured), None

        (state, acc), _ = jax.lax.scan(body, (state, acc), jnp.arange(plain), unroll=scan_unroll(model, plain))
        for j in range(plain, n):
            state, acc = one_step(state, acc, *train.batch(args, j, shard=shard), j == n - 1)
        return state, acc, state["step"] + 0

    if pmap:
        compiled = {}

        def train_fn(state, acc, args, n, logs):
            if (n, logs) not in compiled:  # one pmapped program per distinct call
                compiled[n, logs] = jax.pmap(functools.partial(train_calls, n=n, logs=logs), axis_name="data",
                                             in_axes=(0, 0, None), donate_argnums=(0, 1))
            return compiled[n, logs](state, acc, args)
    else:
        train_fn = jax.jit(train_calls, static_argnames=("n", "logs"), donate_argnums=(0, 1),
                           compiler_options=compiler_options(kernels, width))

    def eval_batch(acc, params, rest, x, y, w, b):
        xb, yb, wb = (jax.lax.with_sharding_constraint(a[b], layout.batch) for a in (x, y, w))
        return add_sums(acc, eval_step(params, rest, xb, yb, wb))

    eval_fn = jax.jit(eval_batch, donate_argnums=0, compiler_options=compiler_options(kernels, width))
    plain_step = task.make_train_step(sm, tx)  # the same sums, for shapes only
    sums_shape = jax.eval_shape(
        lambda s, xy: guard_step(s, *plain_step(s, *xy, dropout_key, norm=unmeasured), skip=False)[1],
        initial, train.example())
    eval_shape = jax.eval_shape(eval_step, sm.params, sm.rest, *evals["val"].example())  # not train's: no ROC there

    # The train accumulator takes the state's form (one copy per device under pmap).
    train_zeros = zeros_maker(sums_shape, layout.batch if pmap else layout.replicated,
                              lead=(layout.num_devices,) if pmap else ())
    eval_zeros = zeros_maker(eval_shape, layout.replicated)

    def evaluate(params, rest, split: str) -> dict[str, float]:
        es = evals[split]
        acc = eval_zeros()
        for b in range(es.num_batches):
            acc = eval_fn(acc, params, rest, es.x, es.y, es.w, b)
        return task.finalize(jax.device_get(acc))

    ctx = Context(task, sm, plan, layout, writers, objective, evaluate, data)
    for h in hooks:
        h.on_start(ctx, loop)  # e.g. restore a checkpoint into `loop`

    # ------------------------------------------------------------------ loop
    lr_at = rates_at(schedule, log_steps(plan.log_every, plan.total_steps))  # no device work at a log
    progress = make_progress(cfg.progress, plan.total_steps, initial=loop.step)
    acc = train_zeros()
    window_start, window_steps = time.perf_counter(), 0
    window_rates: list[float] = []  # samples/s of each log window, sync to sync
    last_log = last_eval = loop.step
    first_step_s = None
    # Several CPU devices: one call in flight, the next dispatched once it is done. XLA's
    # in-process CPU all-reduce can deadlock when many calls are queued (seen with the
    # sharded mlp peer), and the devices' executions hold the client's threads, so a call
    # queued behind a running one only blocks the host and then starts late (measured: the
    # cnn step 4% faster dispatched after the previous call than while it runs).
    bounded = layout.num_devices > 1 and jax.default_backend() == "cpu"
    pending = None
    # A window's sums are fetched after the next call is queued, so the devices compute
    # while the host logs (a fetch right away idles them until the host dispatches
    # again). Not when a hook reads the state at a log: by then it would be a call ahead.
    defer_logs = not any(_overrides(h, "on_log") for h in hooks)
    deferred = None  # (step, sums on device, steps) of a window not yet logged

    def log_window(step: int, acc_w: Any, steps_in: int) -> None:
        nonlocal window_start
        sums = jax.device_get(layout.unreplicate(acc_w) if pmap else acc_w)  # the one host sync per window
        now = time.perf_counter()
        elapsed, window_start = max(now - window_start, 1e-9), now
        window_rates.append(steps_in * B / elapsed)
        measured = int(sums.pop("grad_norm_n", steps_in))  # steps whose norm was taken (0: a cut-short window)
        grad_norm = float(sums.pop("grad_norm")) / measured if measured else None
        guard = {k: sums.pop(k) for k in GUARD_KEYS}
        loop.last_train = task.finalize(sums)
        if guard["nonfinite"] and not skip_nonfinite:
            raise TrainingError(nonfinite_message(guard, step - steps_in, step, loop.last_train["loss"]))
        loop.extra["skipped_steps"] = loop.extra.get("skipped_steps", 0) + int(guard["nonfinite"])
        scalars = {f"train/{k}": v for k, v in loop.last_train.items()}
        if skip_nonfinite:
            scalars["train/skipped_steps"] = loop.extra["skipped_steps"]
        if grad_norm is not None:
            scalars["train/grad_norm"] = grad_norm
        scalars.update({
            "train/lr": lr_at(step),
            "train/samples_per_s": steps_in * B / elapsed,
            "train/steps_per_s": steps_in / elapsed,
            "train/epoch": step / plan.steps_per_epoch,
        })
        writers.scalars(step, scalars)
        progress.set_postfix(**short(loop.last_train, loop.last_val))
        for h in hooks:
            h.on_log(ctx, loop)

    while loop.step < plan.total_steps and not loop.stop:
        n = plan.call_length(loop.step, loop.epoch, K)
        args = train.call_args(loop.epoch, plan.in_epoch(loop.step, loop.epoch), n)
        if bounded and pending is not None:
            pending.block_until_ready()
        logs = n > 1 and plan.crossed(loop.step + n, loop.step, plan.log_every)  # see train_calls
        loop.state, acc, pending = train_fn(loop.state, acc, args, n=n, logs=logs)
        if deferred is not None:  # the call just queued keeps the devices busy meanwhile
            log_window(*deferred)
            deferred = None
        if first_step_s is None:
            jax.block_until_ready(loop.state)
            first_step_s = time.perf_counter() - t_start
            window_start = time.perf_counter()
        loop.step += n
        window_steps += n
        progress.update(n)
        loop.epoch = plan.epoch_after(loop.step, loop.epoch)
        step = loop.step
        evaluating = plan.crossed(step, last_eval, plan.eval_every)

        if plan.crossed(step, last_log, plan.log_every):
            window = (step, acc, window_steps)
            acc = train_zeros()
            window_steps, last_log = 0, step
            if defer_logs and not evaluating:
                deferred = window
            else:  # an evaluation may rank by train metrics: they must be current
                log_window(*window)

        if evaluating:
            current = layout.unreplicate(loop.state)
            loop.last_val = evaluate(current["params"], current["rest"], "val")
            writers.scalars(step, {f"val/{k}": v for k, v in loop.last_val.items()})
            value = (loop.last_val if obj_split == "val" else loop.last_train).get(obj_name, float("nan"))
            improved = better(value, loop.best_value, obj_mode)
            if improved:
                loop.best_value, loop.best_step, loop.best_val = value, step, dict(loop.last_val)
                loop.best_state = jax.tree.map(jnp.copy, (current["params"], current["rest"]))
            progress.set_postfix(**short(loop.last_train, loop.last_val))
            for h in hooks:
                h.on_eval(ctx, loop, improved)
            last_eval = step
        for h in hooks:
            h.on_step(ctx, loop)  # after this call's log and eval: e.g. save a checkpoint
    if deferred is not None:  # the loop stopped early (a hook): log what it trained
        log_window(*deferred)
    progress.close()
    train.close()  # a streaming loader's prefetch thread
    train_s = time.perf_counter() - t_start

    # ------------------------------------------------------------------ final evaluation
    if loop.best_state is None:  # the objective was never finite: test the final state
        current = layout.unreplicate(loop.state)
        loop.best_state, loop.best_step = (current["params"], current["rest"]), loop.step
    # A preempted run has seconds left: its test waits for the resumed run.
    test = evaluate(*loop.best_state, "test") if loop.status != "preempted" else {}
    writers.scalars(loop.step, {f"test/{k}": v for k, v in test.items()})
    loop.status = "completed" if loop.step >= plan.total_steps or loop.status == "running" else loop.status
    summary = {
        "status": loop.status,
        "objective": {"metric": obj_metric, "mode": obj_mode, "value": loop.best_value},
        "best": {"step": loop.best_step, "val": loop.best_val},
        "final": {"step": loop.step, "train": loop.last_train, "val": loop.last_val},
        "test": test,
        "steps": loop.step,
        "epochs": round(loop.step / plan.steps_per_epoch, 3),
        "batch_size": B,
        "steps_per_call": K,
        "cpu_kernels": kernels,
        "cpu_vector_width": width,
        "num_params": n_params,
        "devices": layout.num_devices,
        "time_to_first_step_s": round(first_step_s or 0.0, 3),
        "train_time_s": round(train_s, 3),
        "samples_per_s": round(loop.step * B / max(train_s - (first_step_s or 0.0), 1e-9), 1),
        # The median log window (sync to sync, logging included): the steady training speed,
        # without the compiles a run meets on the way (a short last call of an epoch, evaluation).
        "steady_samples_per_s": round(statistics.median(window_rates), 1) if window_rates else None,
    }
    if skip_nonfinite:
        summary["skipped_steps"] = loop.extra.get("skipped_steps", 0)
    for h in hooks:
        h.on_end(ctx, loop, summary)
    return summary, loop.best_state


# ---------------------------------------------------------------------------- helpers


# Steps a fused call that ends at a log step runs after its scan (the last one takes the
# gradient norm). Two, by measurement on XLA CPU: with one step after the scan the log
# call ran at 0.88-0.97 of a plain call, with two at 0.93-0.99 and with three at
# 0.98-0.99 (dlexp's mlp, in one process in turns, four runs); on the scan-fused peer's
# own step one step after the scan cost 0.95-0.97 and two 0.997-0.999. The cause is not
# known (the programs hold the same loop body and the same kernels; scripts/BENCHMARKS.md).
LOG_CALL_TAIL = 2


def zeros_maker(shapes: Any, sharding: Any, lead: tuple = ()) -> Callable[[], Any]:
    """Fresh metric accumulators, zeros shaped like `shapes` (a tree of ShapeDtypeStructs)
    with `lead` axes in front, made by one compiled call:
    a log window's reset was a dispatch per leaf plus a transfer, run on the devices between
    two training calls (measured: the fused mlp 4-5% faster logging every 200 steps than
    every 20 before this)."""
    return jax.jit(lambda: jax.tree.map(lambda s: jnp.zeros((*lead, *s.shape), s.dtype), shapes),
                   out_shardings=sharding)


FUSED_STEPS_CPU = 10  # auto steps_per_call for a model without convolutions on one CPU device


def check_steps_per_call(value: Any) -> None:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise ConfigError(f"trainer.steps_per_call={value!r} must be auto or an integer >= 1")


def steps_per_call(value: Any, *, conv: bool, devices: int) -> int:
    """Steps per compiled call; `auto` picks by measurement (scripts/bench.py, this CPU):
    the benchmark mlp on one CPU device runs 7% faster with 10 steps per call (fewer
    executions, the cores idle less between them); convolution gradients in a rolled scan
    are 12x slower on XLA CPU and an unrolled one lost to one step per call on the
    2-device mesh (3,816 vs 4,294 samples/s), so conv models keep 1; a mesh keeps 1 (it
    bounds dispatch to one call in flight anyway); other backends keep 1 (not measured)."""
    check_steps_per_call(value)
    if value != "auto":
        return int(value)
    cpu = jax.default_backend() == "cpu"
    return FUSED_STEPS_CPU if cpu and not conv and devices == 1 else 1


def _overrides(hook: Any, name: str) -> bool:
    """Whether `hook` does something at `name` (a Hook subclass that leaves it alone does not)."""
    method = getattr(type(hook), name, None)
    return method is not None and method is not getattr(Hook, name)


def has_conv(model: nnx.Module) -> bool:
    return any(isinstance(m, (nnx.Conv, nnx.ConvTranspose)) for _, m in nnx.iter_graph(model))


def scan_unroll(model: nnx.Module, n: int) -> int:
    """Scan unrolling for fused steps: XLA CPU runs convolution gradients far slower
    inside a rolled scan (measured 12x), so models with convs unroll fully there."""
    return n if has_conv(model) and jax.default_backend() == "cpu" else 1


def short(train: dict, val: dict) -> dict[str, str]:
    """The few numbers the progress bar shows."""
    out = {"loss": f"{train['loss']:.4f}"} if "loss" in train else {}
    for k in ("accuracy", "r2"):
        if k in train:
            out[k] = f"{train[k]:.3f}"
        if k in val:
            out[f"val_{k}"] = f"{val[k]:.3f}"
    return out


def make_progress(enabled: bool, total: int, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, leave=False,
                mininterval=0.5, smoothing=0.1)
