"""The Optax chain from config: clipping, weight decay, the optimizer, the schedule.

The optimizer node is `_target_` (any optax optimizer factory, or a user's) plus its
keyword arguments, and a few keys dlexp owns:
  lr           peak learning rate, turned into a schedule and passed as learning_rate
  clip_norm    clip gradients to this global norm first (null: off)
  weight_decay passed to the optimizer when it takes it (adamw), else added as
               decoupled decay (optax.add_decayed_weights) before it
  accumulate   average gradients over this many steps per update (optax.MultiSteps)

The vectorizable ones (`HYPERPARAMETERS`) are injected with `optax.inject_hyperparams`:
they live in the optimizer state as arrays, not in the program as constants, so copies
of one compiled program (`trainer.copies`, a packed sweep) each train with their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlexp.config import check_call, parameters, target_kwargs
from dlexp.errors import ConfigError

OWN_KEYS = ("lr", "clip_norm", "weight_decay", "accumulate")
HYPERPARAMETERS = ("lr", "weight_decay", "clip_norm", "b1", "b2", "momentum")  # traced, per copy


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


def scaled_schedule(lr: Any, cfg: Any, total_steps: int) -> optax.Schedule:
    """The schedule's shape (peak 1) times the peak `lr`: a traced peak keeps the program one."""
    unit = make_schedule(1.0, cfg, total_steps)
    return lambda count: lr * unit(count)


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


def hyperparameters(node: Any) -> dict[str, float]:
    """The injected values of an optimizer node: lr always; the others where set (null and an
    optimizer that lacks the key leave them out)."""
    fn, kwargs = target_kwargs(node, "optimizer")
    if "lr" not in kwargs:
        raise ConfigError("optimizer.lr is missing: set the peak learning rate, e.g. optimizer.lr=1e-3")
    lr = kwargs["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError(f"optimizer.lr={lr} must be a positive number")
    out = {"lr": float(lr)}
    for key in HYPERPARAMETERS[1:]:
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (key != "clip_norm" or value):
            out[key] = float(value)
    if not out.get("weight_decay"):  # decay 0 adds no step (the optimizer's own decay is then 0)
        out.pop("weight_decay", None)
    return out


def make_optimizer(node: Any, schedule_cfg: Any, total_steps: int) -> tuple[Any, optax.Schedule]:
    """Returns (the transformation, the learning-rate schedule for logging). The node's
    `HYPERPARAMETERS` are the state's initial values; `set_hyperparameters` changes them."""
    fn, kwargs = target_kwargs(node, "optimizer")
    hp = hyperparameters(node)
    static = {k: v for k, v in kwargs.items() if k not in OWN_KEYS and k not in hp}
    takes = parameters(fn)
    decoupled = "weight_decay" in hp and "weight_decay" not in takes
    if "weight_decay" in takes and "weight_decay" not in hp:  # decay 0 (or null): the optimizer's own is 0 too
        static["weight_decay"] = 0.0
    check_call(fn, {**static, **{k: v for k, v in hp.items() if k in takes}}, "optimizer", injected=("learning_rate",))

    def chain(lr, weight_decay=None, clip_norm=None, b1=None, b2=None, momentum=None):
        given = {"weight_decay": weight_decay, "b1": b1, "b2": b2, "momentum": momentum}
        own = {
            k: v for k, v in given.items() if v is not None and k in takes and not (k == "weight_decay" and decoupled)
        }
        inner = fn(learning_rate=scaled_schedule(lr, schedule_cfg, total_steps), **static, **own)
        parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm is not None else []
        parts += [optax.add_decayed_weights(weight_decay)] if decoupled and weight_decay is not None else []
        return optax.chain(*parts, inner) if parts else inner

    try:
        tx = optax.inject_hyperparams(chain)(**hp)
        jax.eval_shape(tx.init, {"w": jnp.zeros(1)})  # a bad argument fails here, named
    except TypeError as e:
        raise ConfigError(f"optimizer: {e}") from None
    k = int(kwargs.get("accumulate") or 1)
    if k > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=k)
    return tx, make_schedule(hp["lr"], schedule_cfg, total_steps)


def set_hyperparameters(opt_state: Any, values: dict[str, float]) -> Any:
    """`opt_state` with its injected hyperparameters set to `values` (every injected state in
    it: a GAN holds two); the keys must be those the state was made with."""
    inject = (optax.InjectStatefulHyperparamsState, optax.InjectHyperparamsState)

    def set_one(s: Any) -> Any:
        if not isinstance(s, inject):
            return s
        if set(values) != set(s.hyperparams):
            raise ConfigError(
                f"the copies' optimizers differ in which keys are set ({sorted(values)} vs {sorted(s.hyperparams)}); "
                "a copies program holds one optimizer structure"
            )
        old = s.hyperparams
        return s._replace(hyperparams={k: jnp.asarray(v, jnp.asarray(old[k]).dtype) for k, v in values.items()})

    return jax.tree.map(set_one, opt_state, is_leaf=lambda s: isinstance(s, inject))
