"""Hooks that end training early: early stopping on the objective, and preemption signals.

Both only set `loop.stop`, a copy's status or the run's; the checkpoint hook, called after them,
saves the state the loop stopped at. Their own counters live in `loop.extra`, so a
checkpoint keeps them and a resumed run stops when the uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from typing import Any

from dlexp.errors import ConfigError
from dlexp.hooks.base import Hook

log = logging.getLogger("dlexp")

# A run ended by a signal exits with this code (EX_TEMPFAIL: "try again later") after
# saving, so a wrapper or launcher can tell "requeue me" from success and failure.
EXIT_PREEMPTED = 75


class EarlyStopping(Hook):
    """Stops a copy after `patience` evaluations without an improvement of at least `min_delta`;
    a stopped copy keeps its state, and the run ends when every copy has stopped."""

    copies_ok = True

    def __init__(self, patience: int, min_delta: float = 0.0):
        if patience < 1:
            raise ConfigError(f"trainer.early_stopping.patience={patience} must be at least 1 (or null: off)")
        if min_delta < 0:
            raise ConfigError(f"trainer.early_stopping.min_delta={min_delta} must be >= 0")
        self.patience, self.min_delta = int(patience), float(min_delta)

    def on_eval(self, ctx: Any, loop: Any, improved: list[bool]) -> None:
        metric, mode = ctx.objective
        counters = loop.extra.setdefault(
            "early_stopping", [{"best": None, "bad_evals": 0, "stopped_at": None} for _ in loop.copies]
        )
        for c, s in zip(loop.copies, counters):
            if c.status != "running":
                continue
            value = c.value(metric)
            if self.improves(value, s["best"], mode):
                s["best"], s["bad_evals"] = value, 0
                continue
            s["bad_evals"] += 1
            if s["bad_evals"] >= self.patience:
                s["stopped_at"], c.status = loop.step, "stopped"
                log.info(
                    "early stopping%s at step %d: %s did not improve by %g for %d evaluations",
                    f" seed {c.seed}" if len(loop.copies) > 1 else "",
                    loop.step,
                    metric,
                    self.min_delta,
                    self.patience,
                )

    def improves(self, value: float, best: float | None, mode: str) -> bool:
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best - self.min_delta if mode == "min" else value > best + self.min_delta

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        stopped = [s["stopped_at"] for s in loop.extra.get("early_stopping", [{"stopped_at": None}] * len(loop.copies))]
        summary["early_stopping"] = {
            "stopped_at": stopped[0] if len(stopped) == 1 else stopped,
            "patience": self.patience,
            "min_delta": self.min_delta,
        }


class Preemption(Hook):
    """On SIGTERM or SIGINT, finish the current step, save, and end with status "preempted".

    A second signal of the same kind ends the process at once (the usual Ctrl-C twice).
    Several processes agree after every call whether any of them was signalled, so all stop
    and save at the same step even when only one host is preempted.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    copies_ok = True

    def __init__(self):
        self.received: int | None = None
        self.previous: dict[int, Any] = {}
        self.processes = 1

    def on_start(self, ctx: Any, loop: Any) -> None:
        import jax

        self.processes = jax.process_count()
        if threading.current_thread() is not threading.main_thread():
            log.debug("not the main thread: preemption signals are left to the caller")
            return
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            self.restore_handlers()
            raise KeyboardInterrupt
        self.received = signum
        log.warning("received %s: saving a checkpoint after this step, then exiting", signal.Signals(signum).name)

    def on_step(self, ctx: Any, loop: Any) -> None:
        stop = self.received is not None
        if self.processes > 1:
            stop = any_process(stop)
        if stop:
            loop.stop, loop.status = True, "preempted"

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        self.restore_handlers()
        if self.received is not None:
            summary["preempted_by"] = signal.Signals(self.received).name

    def restore_handlers(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def close(self) -> None:
        self.restore_handlers()


def any_process(flag: bool) -> bool:
    """Whether `flag` is set in any process (a collective: every process calls it)."""
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())
