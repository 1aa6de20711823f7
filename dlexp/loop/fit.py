"""The training loop: programs, initial state, then per call: step, log, eval, hooks; then the test.

Read `fit` top to bottom. It drives every layout alike (one device, a mesh, pmap, or
copies of the run in one vmapped program; a single run is one copy). The trainer never
knows a loss (the task owns it) and never opens a file (writers and hooks do).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlexp.config import TrainerConfig
from dlexp.copies import Hyper
from dlexp.data import Dataset
from dlexp.data.loader import eval_sets, make_loader
from dlexp.data.shard_loader import sharded_inputs
from dlexp.hooks.base import Hook
from dlexp.loggers.layout import headline, split_tags
from dlexp.loop.guards import (
    GUARD_KEYS,
    never_finite_message,
    nonfinite_message,
    nonfinite_state_message,
    val_never_finite,
)
from dlexp.loop.plan import Plan, better, parse_objective
from dlexp.loop.records import FAILED, RUNNING, Context, CopyRecord, Loop, make_progress, results, short
from dlexp.loop.step import build_programs, root_keys
from dlexp.models.split import SplitModel, all_finite, count_params
from dlexp.optim import log_steps, rates_at
from dlexp.parallel import Layout
from dlexp.tasks import Task

log = logging.getLogger("dlexp")


def fit(
    *,
    task: Task,
    splits: Sequence[SplitModel],
    conv: bool,
    copies: list[CopyRecord],
    tx: Any,
    hypers: Sequence[Hyper],
    schedules: Sequence[optax.Schedule],
    data: Dataset,
    plan: Plan,
    trainer: TrainerConfig,
    objective: tuple[str, str],
    layout: Layout,
    writers: Sequence[Any],
    hooks: Sequence[Hook] = (),
    augment: Callable | None = None,
) -> tuple[dict[str, Any], Any]:
    """Trains one model per copy (one: a single run; `splits`: each copy's model split once, `conv`:
    whether it convolves), evaluates on val at the cadence, keeps each
    copy's best state and tests it. Per copy: a fresh record (its seed, name and values), its
    `hypers` (the values its state holds), its lr `schedules` (for logging) and `writers`.
    `augment(x, key)` transforms each training batch inside the step. Returns (the summary
    summary.json holds, the best (params, rest))."""
    t_start = time.perf_counter()
    obj_metric, obj_mode = objective
    parse_objective(obj_metric, task.metric_names, task.name)
    seeds = [c.seed for c in copies]
    copies_run = layout.kind == "copies"
    skip_nonfinite = trainer.nan_policy == "skip"

    # ------------------------------------------------------------------ data on device, programs
    if data.shards is not None:  # each process holds its own shards (dlexp/data/shard_loader.py)
        loader, evals = sharded_inputs(data, plan.batch_size, trainer.eval_batch_size, seeds[0], layout.mesh)
    else:
        loader = make_loader(
            data, plan.batch_size, seeds[0], layout.replicated, copies=(seeds, layout.batch) if copies_run else None
        )
        evals = eval_sets(
            data, trainer.eval_batch_size, layout.replicated, multiple=1 if copies_run else layout.num_devices
        )
    sm = splits[0]  # one graph: the copies differ only in their arrays
    programs = build_programs(
        task,
        sm,
        tx,
        layout,
        loader=loader,
        evals=evals,
        augment=augment,
        skip_nonfinite=skip_nonfinite,
        steps_per_call=trainer.steps_per_call,
        conv=conv,
        cpu_kernels=trainer.cpu_kernels,
        total_steps=plan.total_steps,
    )

    # ------------------------------------------------------------------ state
    states = [h.set_in(task.init_state(s, tx)) for s, h in zip(splits, hypers)]
    initial = jax.tree.map(lambda *a: jnp.stack(a), *states) if copies_run else states[0]
    loop = Loop(state=layout.place_state(initial), copies=list(copies))
    keys = root_keys(seeds, layout)
    ctx = Context(task, sm, plan, layout, writers[0], list(writers), objective, data, list(seeds))
    for h in hooks:
        h.on_start(ctx, loop)  # e.g. restore a checkpoint into `loop`
    # nan_policy=skip: each copy's [val loss ever finite, non-finite evaluations in a row, last evaluated step]
    val_streaks = loop.extra.setdefault("val_finite", [[False, 0, 0] for _ in seeds]) if skip_nonfinite else []
    state_finite = jax.jit(jax.vmap(all_finite) if copies_run else all_finite) if skip_nonfinite else None

    def running() -> tuple[bool, ...]:
        return tuple(c.status == RUNNING for c in loop.copies)

    def active_mask(flags: tuple[bool, ...]):  # copies: which still train (a stopped or failed copy keeps its state)
        return jax.device_put(np.array(flags), layout.batch) if copies_run else None

    def log_train(step: int, acc_w: Any, steps_in: int, elapsed: float) -> None:
        # Skip keeps the state of a bad step; an update that overflowed with a finite loss still fails the copy.
        finite = state_finite(layout.unreplicate(loop.state)) if state_finite is not None else None
        host, finite = jax.device_get((acc_w, finite))  # the window's one sync (with the state check, under skip)
        window = layout.per_copy(host)
        for i, (c, sums, w) in enumerate(zip(loop.copies, window, writers)):
            if c.status != RUNNING:
                continue
            measured = int(sums.pop("grad_norm_n"))
            grad_norm = float(sums.pop("grad_norm")) / measured if measured else None
            guard = {k: sums.pop(k) for k in GUARD_KEYS}
            if guard["nonfinite"] and not skip_nonfinite:
                loop.fail(c, nonfinite_message(guard, step - steps_in, step, float(sums["loss"])))
                continue
            c.skipped_steps += int(guard["nonfinite"])
            if finite is not None and not np.atleast_1d(finite)[i]:
                loop.fail(c, nonfinite_state_message(step, c.skipped_steps))
                continue
            c.last_train = task.finalize(sums)
            w.scalars(
                step,
                {
                    **split_tags("train", headline(c.last_train)),  # per class: val and test only
                    **({"optimizer/grad_norm": grad_norm} if grad_norm is not None else {}),
                    **({"optimizer/skipped_steps": c.skipped_steps} if skip_nonfinite else {}),
                    "optimizer/lr": lr_at[i](step),
                    "throughput/samples_per_s": steps_in * plan.batch_size / elapsed,
                    "throughput/epoch": step / plan.steps_per_epoch,
                },
            )
        loop.raise_if_all_failed()
        progress.set_postfix(short(loop.copies[0].last_train, loop.copies[0].last_val))
        for h in hooks:
            h.on_log(ctx, loop)

    def evaluate_val(step: int) -> None:
        current = layout.unreplicate(loop.state)
        improved = []
        found = programs.evaluate(current["params"], current["rest"], "val")
        for i, (c, metrics, w) in enumerate(zip(loop.copies, found, writers)):
            improved.append(False)
            if c.status != RUNNING:
                continue
            c.last_val = metrics
            w.scalars(step, split_tags("val", metrics))
            if skip_nonfinite and val_never_finite(val_streaks[i], metrics.get("loss", float("nan")), step):
                loop.fail(c, never_finite_message(val_streaks[i][1], step, c.skipped_steps))
                continue
            value = c.value(obj_metric)
            if better(value, c.best_value, obj_mode):
                c.best_value, c.best_step, c.best_val, improved[-1] = value, step, dict(metrics), True
        loop.raise_if_all_failed()
        if any(improved):
            loop.best_state = programs.keep_best(improved, (current["params"], current["rest"]), loop.best_state)
        progress.set_postfix(short(loop.copies[0].last_train, loop.copies[0].last_val))
        for h in hooks:
            h.on_eval(ctx, loop, improved)

    # ------------------------------------------------------------------ loop
    at = log_steps(plan.log_every, plan.total_steps)
    lr_at = [rates_at(schedule, at) for schedule in schedules]  # no device work at a log
    progress = make_progress(trainer.progress, plan.total_steps, initial=loop.step)
    acc, active_flags = programs.train_zeros(), running()
    active = active_mask(active_flags)
    log_flags = [jax.device_put(np.bool_(b), layout.replicated) for b in (False, True)]  # made once, not per call
    last_log = last_eval = loop.step
    window_start, window_steps, window_rates, first_step_s, pending = time.perf_counter(), 0, [], None, None
    while loop.step < plan.total_steps and not loop.stop:
        n = plan.call_length(loop.step, loop.epoch, programs.steps_per_call)
        logs = plan.crossed(loop.step + n, last_log, plan.log_every)
        args = loader.call_args(loop.epoch, plan.in_epoch(loop.step, loop.epoch), n)
        if programs.bounded and pending is not None:
            pending.block_until_ready()
        loop.state, acc, pending = programs.train(loop.state, acc, args, keys, active, log_flags[logs], n=n)
        if first_step_s is None:
            jax.block_until_ready(loop.state)
            first_step_s, window_start = time.perf_counter() - t_start, time.perf_counter()
        loop.step, window_steps = loop.step + n, window_steps + n
        loop.epoch = plan.epoch_after(loop.step, loop.epoch)
        progress.update(n)
        if logs:
            acc_w, acc = acc, programs.train_zeros()
            jax.block_until_ready(acc_w)
            elapsed, window_start = max(time.perf_counter() - window_start, 1e-9), time.perf_counter()
            window_rates.append(window_steps * plan.batch_size / elapsed)
            log_train(loop.step, acc_w, window_steps, elapsed)
            window_steps, last_log = 0, loop.step
        if plan.crossed(loop.step, last_eval, plan.eval_every):
            evaluate_val(loop.step)
            last_eval = loop.step
        for h in hooks:
            h.on_step(ctx, loop)  # after this call's log and eval: e.g. save a checkpoint
        if running() != active_flags:
            active_flags = running()
            active = active_mask(active_flags)
        loop.stop = loop.stop or not any(active_flags)
    progress.close()
    loader.close()  # a streaming loader's prefetch thread
    train_s = time.perf_counter() - t_start

    # ------------------------------------------------------------------ final evaluation
    if skip_nonfinite and loop.status != "preempted":  # every val loss non-finite: fails, however few there were
        for c, (ever, evals, last) in zip(loop.copies, val_streaks, strict=True):
            if c.status != FAILED and not ever and evals:
                loop.fail(c, never_finite_message(evals, last, c.skipped_steps))
        loop.raise_if_all_failed()
    # A copy whose objective was never finite is tested with its final state.
    final = layout.unreplicate(loop.state)
    never = [c.best_value is None for c in loop.copies]
    best = (
        programs.keep_best(never, (final["params"], final["rest"]), loop.best_state) if any(never) else loop.best_state
    )
    loop.best_state = best
    # A preempted run has seconds left: its test waits for the resumed run.
    tests = programs.evaluate(best[0], best[1], "test") if loop.status != "preempted" else [{} for _ in seeds]
    for t, w in zip(tests, writers):
        w.scalars(loop.step, split_tags("test", t))
    loop.status = "completed" if loop.status == RUNNING else loop.status
    summary = {
        **results(loop, tests, objective, copies=copies_run),
        "steps": loop.step,
        "epochs": round(loop.step / plan.steps_per_epoch, 3),
        "batch_size": plan.batch_size,
        "steps_per_call": programs.steps_per_call,
        "cpu_kernels": trainer.cpu_kernels,
        "num_params": count_params(sm.params),
        "devices": layout.num_devices,
        "time_to_first_step_s": round(first_step_s or 0.0, 3),
        "train_time_s": round(train_s, 3),
        "samples_per_s": round(
            len(seeds) * loop.step * plan.batch_size / max(train_s - (first_step_s or 0.0), 1e-9), 1
        ),
        # The median log window: the steady speed, without the compiles a run meets on the way.
        "steady_samples_per_s": round(statistics.median(window_rates), 1) if window_rates else None,
    }
    for h in hooks:
        h.on_end(ctx, loop, summary)
    return summary, best
