"""The hook interface: what happens around the loop without living in it.

The loop calls each hook at five points with the run's `Context` (its fixed parts:
task, model, plan, layout, writers, objective, data, seeds) and its `Loop` (what
changes: state, step, epoch, and `loop.copies`, one record per copy with its status,
last train and val metrics and best so far; a single run has one). A hook may set
`loop.stop = True` to end training after the current call, mark a copy
`status = "stopped"` (the loop ends when none is running), or replace `loop` fields in
`on_start` to resume. Configure hooks in `conf/callbacks/`; write your own by
subclassing `Hook` and naming it by `_target_`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loop imports hooks, not the other way round
    from dlexp.loop.records import Context, Loop


class Hook:
    """Base class: every method is optional."""

    copies_ok: bool = False  # whether the hook works on a run of several copies (trainer.seeds)
    reads_splits: bool = False  # whether it reads whole splits (ctx.data.x): not with data split over processes

    def on_start(self, ctx: Context, loop: Loop) -> None:
        """After the state is built, before the first step."""

    def on_log(self, ctx: Context, loop: Loop) -> None:
        """After train metrics were logged (loop.copies[i].last_train)."""

    def on_eval(self, ctx: Context, loop: Loop, improved: list[bool]) -> None:
        """After a val evaluation (loop.copies[i].last_val); `improved[i]`: copy i has a new best."""

    def on_step(self, ctx: Context, loop: Loop) -> None:
        """After each compiled call and its log and eval, if any (checkpoints, preemption)."""

    def on_end(self, ctx: Context, loop: Loop, summary: dict) -> None:
        """After the test evaluation; may add entries to `summary`."""
