"""A JAX profiler trace of a few training steps, for TensorBoard's profile plugin.

`logger.profile_steps=N` (or `debug=profile`) traces N steps after the first call
(which is compilation, not training) into <run>/tb/plugins/profile/<time>/, where
`tensorboard --logdir <run>/tb` finds it (the plugin: `pip install tensorboard-plugin-profile`).
"""

from __future__ import annotations

import logging
import os

import jax

from dlexp.hooks.base import Hook

log = logging.getLogger("dlexp")


class ProfileHook(Hook):
    copies_ok = True

    def __init__(self, logdir: str, steps: int):
        self.logdir, self.steps = logdir, int(steps)
        self.started_at: int | None = None
        self.stopped_at: int | None = None
        self.done = False

    def on_step(self, ctx, loop) -> None:
        if self.done:
            return
        if self.started_at is None:  # skip the compiling first call
            jax.block_until_ready(loop.state)
            jax.profiler.start_trace(self.logdir)
            self.started_at = loop.step
        elif loop.step - self.started_at >= self.steps:
            self._stop(loop)

    def on_end(self, ctx, loop, summary) -> None:
        if self.started_at is not None and not self.done:
            self._stop(loop)
        summary["profile"] = {
            "steps": [self.started_at, self.stopped_at] if self.started_at is not None else None,
            "dir": os.path.join(self.logdir, "plugins", "profile"),
        }

    def _stop(self, loop) -> None:
        jax.block_until_ready(loop.state)  # the traced steps have run, not just been dispatched
        jax.profiler.stop_trace()
        self.done, self.stopped_at = True, loop.step
        log.info("profile: steps %d..%d traced into %s", self.started_at, loop.step, self.logdir)
