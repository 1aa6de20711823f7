"""How many copies of a run one program should hold: an estimate per copy against a memory
budget, and where packing pays at all."""

from __future__ import annotations

import logging
import os
from typing import Any

import jax

from dlexp.errors import ConfigError

log = logging.getLogger("dlexp")


class TooManyCopies(ConfigError):
    """The copies do not fit the memory budget together; `fit` of them would (0: not even one)."""

    def __init__(self, message: str, fit: int):
        super().__init__(message)
        self.fit = fit


def check_packing_pays(platform: str, conv: bool, n: int) -> None:
    """sweep.pack=null packs everywhere but convolutions on CPU: there a vmapped convolution runs
    slower than separate programs (docs/sweeps.md), so such jobs run one at a time."""
    if n > 1 and platform == "cpu" and conv:
        raise TooManyCopies(
            "convolutions on CPU train faster as separate programs than as copies (sweep.pack=true packs them)", 1
        )


def tree_bytes(tree: Any) -> int:
    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def copy_bytes(task: Any, sm: Any, tx: Any, batch: tuple) -> int:
    """One copy's memory: its state three times (the state, its donated update, the best state)
    plus every intermediate array of one train step (an upper bound: XLA reuses buffers)."""
    state = jax.eval_shape(lambda: task.init_state(sm, tx))
    step = task.make_train_step(sm, tx)
    jaxpr = jax.make_jaxpr(step)(state, *batch, jax.random.key(0))
    activations = sum(v.aval.size * v.aval.dtype.itemsize for e in jaxpr.eqns for v in e.outvars if hasattr(v, "aval"))
    return 3 * tree_bytes(state) + int(activations)


def budget_bytes(memory_gb: float | None, device: Any) -> int:
    """sweep.memory_gb, else the accelerator's limit, else half the host's available memory."""
    if memory_gb is not None:
        if not memory_gb > 0:
            raise ConfigError(f"sweep.memory_gb={memory_gb} must be a positive number of GB (null: the device's)")
        return int(memory_gb * 2**30)
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * 0.9)
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)


def check_fit(n: int, per_copy: int, budget: int, data_bytes: int) -> None:
    """Raises TooManyCopies when `n` copies of `per_copy` bytes and the shared data exceed `budget`."""
    fit = max(budget - data_bytes, 0) // max(per_copy, 1)
    if fit >= n:
        return
    need = lambda b: f"{b / 2**30:.3g} GB"  # noqa: E731
    what = (
        f"one copy alone needs about {need(per_copy + data_bytes)} with the data"
        if fit == 0
        else f"{n} copies need about {need(n * per_copy + data_bytes)}; {fit} fit"
    )
    raise TooManyCopies(
        f"{what}, and sweep.memory_gb allows {need(budget)}; lower trainer.batch_size or the model's size, "
        "or raise sweep.memory_gb",
        fit,
    )


def check_copies_fit(data: Any, task: Any, sm: Any, tx: Any, batch_size: int, n: int, memory_gb: float | None) -> None:
    """Before a copies program starts: do `n` copies fit (raises TooManyCopies if not)?"""
    import numpy as np

    x, y = data.x["train"], data.y["train"]
    batch = (
        jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype),
        jax.ShapeDtypeStruct((batch_size, *np.shape(y)[1:]), np.asarray(y[:1]).dtype),
    )
    data_bytes = sum(int(np.asarray(a).nbytes) for split in (data.x, data.y) for a in split.values())
    per_copy, budget = copy_bytes(task, sm, tx, batch), budget_bytes(memory_gb, jax.local_devices()[0])
    log.info(
        "copies: %d of about %.3g MB each, data %.3g MB, budget %.3g MB",
        n,
        per_copy / 2**20,
        data_bytes / 2**20,
        budget / 2**20,
    )
    check_fit(n, per_copy, budget, data_bytes)
