"""Hooks: what happens around the loop without living in it.

The trainer calls each hook at five points with the run's `Context` (fixed parts)
and `Loop` (what changes). Checkpointing, early stopping, plots and inspection are
hooks; a hook may set `loop.stop = True` to end training after the current step, or
replace `loop` fields in `on_start` to resume.
"""

from __future__ import annotations

from typing import Any


class Hook:
    """Base class: every method is optional."""

    def on_start(self, ctx: Any, loop: Any) -> None:
        """After the state is built, before the first step."""

    def on_log(self, ctx: Any, loop: Any) -> None:
        """After train metrics were logged (loop.last_train)."""

    def on_eval(self, ctx: Any, loop: Any, improved: bool) -> None:
        """After a val evaluation (loop.last_val); `improved`: a new best objective."""

    def on_step(self, ctx: Any, loop: Any) -> None:
        """After each compiled call and its log and eval, if any (checkpoints, preemption)."""

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        """After the test evaluation; may add entries to `summary`."""
