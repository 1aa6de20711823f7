"""Saves the run at its cadence, when the loop stops and at the end; restores it on start.

The batch order is a pure function of (seed, epoch) and dropout keys are
fold_in(key, step), so the state pytree plus the loop's host side (`Loop.meta`) resume a
run exactly, copies included (their state is stacked along a leading axis).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jax

from dlexp.checkpoint import Checkpoints, abstract_of, checkpoint_dir, json_restored
from dlexp.config import CheckpointConfig
from dlexp.errors import ConfigError
from dlexp.hooks.base import Hook
from dlexp.models.split import all_finite

log = logging.getLogger("dlexp")


def run_meta(ctx: Any, loop: Any) -> dict:
    plan = ctx.plan
    return {
        **loop.meta(),
        "seeds": ctx.seeds,
        "labels": [c.label for c in loop.copies],
        "objective": list(ctx.objective),
        "plan": {
            "batch_size": plan.batch_size,
            "steps_per_epoch": plan.steps_per_epoch,
            "total_steps": plan.total_steps,
        },
    }


def check_resumable(meta: dict, ctx: Any, labels: list[str], directory: str) -> None:
    """A resumed run must draw the same batches: same seeds, batch size and epoch length."""
    if meta["seeds"] != ctx.seeds:
        what = lambda seeds: f"seed={seeds[0]}" if len(seeds) == 1 else f"trainer.seeds={seeds}"  # noqa: E731
        raise ConfigError(
            f"{what(ctx.seeds)}, but the checkpoint in {directory} was trained with "
            f"{what(meta['seeds'])}; resume with the same seeds, or start in another run dir"
        )
    if meta.get("labels", labels) != labels:
        raise ConfigError(
            f"trainer.copies gives copies {labels}, but the checkpoint in {directory} was trained with "
            f"{meta['labels']}; resume with the same copies, or start in another run dir"
        )
    saved, plan = meta["plan"], ctx.plan
    for key, name in (("batch_size", "trainer.batch_size"), ("steps_per_epoch", "steps per epoch")):
        if saved[key] != getattr(plan, key):
            raise ConfigError(
                f"{name} is {getattr(plan, key)}, but the checkpoint in {directory} was trained with "
                f"{saved[key]}; resume with the same data and trainer.batch_size, or start in another run dir"
            )
    if saved["total_steps"] != plan.total_steps:
        log.warning(
            "resuming a run planned for %d steps with %d steps: the learning-rate schedule changes",
            saved["total_steps"],
            plan.total_steps,
        )


params_finite = jax.jit(all_finite)


class CheckpointHook(Hook):
    """Saves at the configured cadence (at most once per `min_interval_s`), when the loop stops
    and at the end; restores the latest checkpoint on start.

    `resume_from` is the run dir whose checkpoints to continue from (the run's own by
    default; another with trainer.resume, whose checkpoints are then only read).
    """

    copies_ok = True

    def __init__(self, run_dir: str, cfg: CheckpointConfig, *, resume_from: str | None = None):
        self.cfg = cfg
        self.store = Checkpoints(run_dir, keep=int(cfg.keep), async_save=bool(cfg.async_save))
        same = resume_from is None or checkpoint_dir(resume_from) == self.store.directory
        self.source = self.store if same or resume_from is None else Checkpoints(resume_from, read_only=True)
        self.saved_step, self.saved_epoch, self.saved_at = 0, 0, time.monotonic()
        self.resumed_from: int | None = None
        for key in ("every_steps", "every_epochs"):
            value = getattr(cfg, key)
            if value is not None and value < 1:
                raise ConfigError(f"trainer.checkpoint.{key}={value} must be at least 1 (or null: off)")

    def on_start(self, ctx: Any, loop: Any) -> None:
        if self.source.steps():
            self.restore(ctx, loop)
        self.saved_step, self.saved_epoch = loop.step, loop.epoch

    def restore(self, ctx: Any, loop: Any) -> None:
        abstract = abstract_of(ctx.layout.unreplicate(loop.state))
        step, (state, best, meta) = self.source.latest_good(lambda s: self.source.restore(s, abstract))
        self.adopt(ctx, loop, step, state, best, meta)

    def adopt(self, ctx: Any, loop: Any, step: int, state: Any, best: dict, meta: dict) -> None:
        """Puts a restored checkpoint into the loop, once it is checked to fit this run."""
        meta = json_restored(meta)
        check_resumable(meta, ctx, [c.label for c in loop.copies], self.source.directory)
        self.set_aside(after=step)
        loop.state = ctx.layout.place_state(state)
        loop.load_meta(meta)
        loop.best_state = (best["params"], best["rest"]) if any(c.best_step >= 0 for c in loop.copies) else None
        self.resumed_from = step
        log.info("resumed from the checkpoint at step %d (epoch %d) in %s", step, loop.epoch, self.source.directory)

    def set_aside(self, after: int) -> None:
        """Damaged steps after the restored one move aside, in this run's own dir only."""
        if self.source is self.store:
            self.store.set_aside(after=after)

    def on_step(self, ctx: Any, loop: Any) -> None:
        cfg = self.cfg
        due = loop.stop or loop.step >= ctx.plan.total_steps
        if not due and time.monotonic() - self.saved_at >= (cfg.min_interval_s or 0):
            due = bool(cfg.every_steps and loop.step // cfg.every_steps > self.saved_step // cfg.every_steps) or bool(
                cfg.every_epochs and loop.epoch // cfg.every_epochs > self.saved_epoch // cfg.every_epochs
            )
        if due and loop.step != self.saved_step:
            self.save(ctx, loop)

    def save(self, ctx: Any, loop: Any) -> None:
        state = ctx.layout.unreplicate(loop.state)
        if not bool(params_finite(state["params"])):
            log.warning("not saving step %d: its parameters are not finite (the last checkpoint stays)", loop.step)
            return
        params, rest = loop.best_state if loop.best_state is not None else (state["params"], state["rest"])
        self.store.save(loop.step, state, {"params": params, "rest": rest}, run_meta(ctx, loop))
        self.saved_step, self.saved_epoch, self.saved_at = loop.step, loop.epoch, time.monotonic()

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        self.store.wait()
        summary["checkpoint"] = {
            "dir": self.store.directory,
            "steps": self.store.steps(),
            "resumed_from_step": self.resumed_from,
        }
        self.close()

    def close(self) -> None:
        """Waits for the last asynchronous save (also after a failure, so it is not cut off)."""
        self.store.close()


class MemberCheckpoints(CheckpointHook):
    """A packed sweep's checkpoints: each copy's slice in its own job dir, saved as a single run's
    (so `dlexp.evaluate <job dir>` reads it), all at the same steps; restored by stacking the
    slices at the newest step every job dir holds."""

    def __init__(self, member_dirs: list[str], cfg: CheckpointConfig):
        super().__init__(member_dirs[0], cfg)
        self.stores = [self.store] + [
            Checkpoints(d, keep=int(cfg.keep), async_save=bool(cfg.async_save)) for d in member_dirs[1:]
        ]

    def common_steps(self) -> list[int]:
        return sorted(set.intersection(*(set(s.steps()) for s in self.stores)))

    def on_start(self, ctx: Any, loop: Any) -> None:
        if self.common_steps():
            self.restore(ctx, loop)
        self.saved_step, self.saved_epoch = loop.step, loop.epoch

    def restore(self, ctx: Any, loop: Any) -> None:
        sharding = ctx.layout.replicated
        one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, sharding=sharding), loop.state)

        def stacked(step: int) -> tuple[Any, Any, dict]:  # every job's slice at `step` (one missing: damaged)
            parts = [s.restore(step, one) for s in self.stores]
            stack = lambda *a: jax.numpy.stack(a)  # noqa: E731
            state = jax.tree.map(stack, *(p[0] for p in parts))
            best = jax.tree.map(stack, *(p[1] for p in parts))
            return state, best, parts[0][2]

        step, (state, best, meta) = self.store.latest_good(stacked)
        self.adopt(ctx, loop, step, state, best, meta)

    def set_aside(self, after: int) -> None:
        for s in self.stores:
            s.set_aside(after=after)

    def save(self, ctx: Any, loop: Any) -> None:
        state = loop.state
        params, rest = loop.best_state if loop.best_state is not None else (state["params"], state["rest"])
        meta = run_meta(ctx, loop)
        host = jax.device_get((state, {"params": params, "rest": rest}))  # one transfer, then host slices
        for i, store in enumerate(self.stores):
            one = jax.tree.map(lambda a, i=i: a[i], host)
            store.save(loop.step, one[0], one[1], meta)
        self.saved_step, self.saved_epoch, self.saved_at = loop.step, loop.epoch, time.monotonic()

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        for s in self.stores:
            s.wait()
        summary["checkpoint"] = {"steps": self.store.steps(), "resumed_from_step": self.resumed_from}
        self.close()

    def close(self) -> None:
        for s in self.stores:
            s.close()
