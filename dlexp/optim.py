"""The Optax chain from config: clipping, weight decay, the optimizer, the schedule.

The optimizer node is `_target_` (any optax optimizer factory, or a user's) plus its
keyword arguments, and a few keys dlexp owns:
  lr           peak learning rate, turned into a schedule and passed as learning_rate
  clip_norm    clip gradients to this global norm first (null: off)
  weight_decay passed to the optimizer when it takes it (adamw), else added as
               decoupled decay (optax.add_decayed_weights) before it
  accumulate   average gradients over this many steps per update (optax.MultiSteps)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optax

from dlexp.config import check_call, parameters, target_kwargs
from dlexp.errors import ConfigError

OWN_KEYS = ("lr", "clip_norm", "weight_decay", "accumulate")


def make_schedule(lr: float, cfg: Any, total_steps: int) -> optax.Schedule:
    name = cfg.name
    total = max(int(total_steps), 1)
    warmup = cfg.warmup_steps if cfg.warmup_steps >= 1 else cfg.warmup_steps * total
    warmup = int(min(warmup, total - 1)) if total > 1 else 0
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, total, alpha=cfg.final_lr_factor)
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total, end_value=lr * cfg.final_lr_factor)
    raise ConfigError(f"schedule.name={name!r} is not known")


def rates_at(schedule: Callable, steps) -> Callable[[int], float]:
    """`step -> schedule(step)` for logging, read from values computed in one call now.

    An optax schedule is jnp code: evaluated at a log, its tiny computation would queue behind
    the training call already on the device and the host would wait for that call, so the
    values are computed before the loop. A step outside `steps` is computed as it is asked for."""
    steps = np.unique(np.asarray(steps, np.int64))
    values = np.broadcast_to(np.asarray(schedule(steps)), steps.shape)

    def rate(step: int) -> float:
        i = int(np.searchsorted(steps, step))
        return float(values[i]) if i < len(steps) and steps[i] == step else float(schedule(step))

    return rate


def log_steps(log_every: int, total_steps: int) -> np.ndarray:
    """The steps a run logs its train window at: every `log_every`-th and the last."""
    return np.append(np.arange(log_every, total_steps + 1, log_every), total_steps)


def make_optimizer(node: Any, schedule_cfg: Any, total_steps: int) -> tuple[Any, optax.Schedule]:
    """Returns (the transformation, the learning-rate schedule for logging)."""
    fn, kwargs = target_kwargs(node, "optimizer")
    own = {k: kwargs.pop(k) for k in OWN_KEYS if k in kwargs}
    params = parameters(fn)
    if "lr" not in own:
        raise ConfigError("optimizer.lr is missing: set the peak learning rate, e.g. optimizer.lr=1e-3")
    lr = float(own["lr"])
    if not lr > 0:
        raise ConfigError(f"optimizer.lr={own['lr']} must be a positive number")
    schedule = make_schedule(lr, schedule_cfg, total_steps)
    decay = own.get("weight_decay") or 0.0
    if "weight_decay" in params:
        kwargs["weight_decay"] = decay
        decay = 0.0
    check_call(fn, kwargs, "optimizer", injected=("learning_rate",))
    try:
        tx = fn(learning_rate=schedule, **kwargs)
    except TypeError as e:
        raise ConfigError(f"optimizer: {e}") from None
    parts = []
    if own.get("clip_norm"):
        parts.append(optax.clip_by_global_norm(float(own["clip_norm"])))
    if decay:
        parts.append(optax.add_decayed_weights(float(decay)))
    tx = optax.chain(*parts, tx) if parts else tx
    k = int(own.get("accumulate") or 1)
    if k > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=k)
    return tx, schedule
