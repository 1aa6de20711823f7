"""Copies of one run in one compiled program: the keys they may differ in, and each one's config.

A copy is the run's config with its own values of a few vectorizable keys: the seed, the
optimizer's lr (the schedule's peak), weight_decay, clip_norm, b1, b2 and momentum, the
loss's l1, l2 and label_smoothing, and the model's dropout rates. These are held as arrays
in the state (`optax.inject_hyperparams`, the state's "hyper", a dropout `Rate`), so copies
share one program and each trains exactly as its own run would.

  trainer.seeds=4                                         # seeds base .. base+3
  'trainer.copies=[{optimizer.lr: 1e-3}, {optimizer.lr: 3e-3, loss.l2: 1e-4}]'
  both: every override set with every seed

Copies share the data split (of `data_seed`, else the run's own `seed`) and which terms are
on: a key that is 0 or null (off) in one copy is off in all (the program's structure).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlexp.config import TrainConfig, seed_list
from dlexp.errors import ConfigError

VECTORIZABLE = (
    "seed",
    "optimizer.lr",
    "optimizer.weight_decay",
    "optimizer.clip_norm",
    "optimizer.b1",
    "optimizer.b2",
    "optimizer.momentum",
    "loss.l1",
    "loss.l2",
    "loss.label_smoothing",
)


def is_vectorizable(key: str) -> bool:
    """Whether copies of one program may differ in `key` (a model key: any dropout rate)."""
    return key in VECTORIZABLE or (key.startswith("model.") and "dropout" in key.rsplit(".", 1)[-1])


# Keys whose 0 or null removes a term from the program (clipping, decay, a penalty, smoothing),
# besides the model's dropout rates (a rate of 0 draws no mask).
SWITCHES = (
    "optimizer.weight_decay",
    "optimizer.clip_norm",
    "optimizer.momentum",
    "loss.l1",
    "loss.l2",
    "loss.label_smoothing",
)


def is_switch(key: str) -> bool:
    return key in SWITCHES or (key.startswith("model.") and is_vectorizable(key))


def is_on(value: Any) -> bool:
    """Whether a vectorizable value switches its term on (0 and null: off)."""
    return value is not None and value != 0


@dataclass(frozen=True)
class Hyper:
    """A copy's values as the state holds them: the optimizer's injected ones and the loss's."""

    optimizer: dict[str, float]
    loss: dict[str, float]

    def set_in(self, state: dict) -> dict:
        from dlexp.optim import set_hyperparameters
        from dlexp.tasks.base import with_hyper

        return with_hyper({**state, "opt": set_hyperparameters(state["opt"], self.optimizer)}, self.loss)


@dataclass(frozen=True)
class CopySpec:
    """One copy: its own values and the name its TensorBoard run and summary row go by."""

    values: dict[str, Any]
    label: str


def label_of(values: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items()) or "base"


def copy_specs(cfg: TrainConfig) -> list[CopySpec] | None:
    """The copies `trainer.copies` and `trainer.seeds` ask for (None: a single run)."""
    sets, seeds = cfg.trainer.copies, cfg.trainer.seeds
    if sets is None and seeds is None:
        return None
    override_sets = [{}] if sets is None else checked_sets(sets)
    seed_values = [None] if seeds is None else seed_list(seeds, cfg.seed)
    specs = []
    for values in override_sets:
        for s in seed_values:
            own = dict(values) if s is None else {**values, "seed": s}
            label = f"seed_{s}" if sets is None else label_of(own)
            specs.append(CopySpec(own, label))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"trainer.copies: two copies have the same values ({labels}); each copy must differ")
    check_switches([s.values for s in specs], cfg)
    return specs


def checked_sets(sets: Any) -> list[dict[str, Any]]:
    example = "'trainer.copies=[{optimizer.lr: 1e-3}, {optimizer.lr: 3e-3}]'"
    if isinstance(sets, Mapping) or isinstance(sets, (str, bytes)) or not isinstance(sets, Sequence) or not sets:
        raise ConfigError(f"trainer.copies must be a non-empty list of override sets, e.g. {example}")
    out = []
    for i, values in enumerate(sets):
        if not isinstance(values, Mapping):
            raise ConfigError(f"trainer.copies[{i}]={values!r} must be a mapping of keys to values, e.g. {example}")
        for key in values:
            if not is_vectorizable(str(key)):
                raise ConfigError(
                    f"trainer.copies[{i}]: {key} cannot differ between copies of one program; vectorizable keys: "
                    f"{', '.join(VECTORIZABLE)} and model dropout rates (sweep other keys with -m)"
                )
        out.append({str(k): v for k, v in values.items()})
    return out


def check_switches(sets: list[dict[str, Any]], cfg: TrainConfig) -> None:
    """Every key is on in all copies or off in all (its term is part of the program)."""
    for key in dict.fromkeys(k for values in sets for k in values if is_switch(k)):
        on = {is_on(values[key] if key in values else get(cfg, key)) for values in sets}
        if len(on) > 1:
            raise ConfigError(
                f"trainer.copies: {key} is 0 or null (off) in some copies and set in others; copies of one "
                f"program share which terms are on: give every copy a value (or none), or run them apart"
            )


def get(cfg: TrainConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else getattr(node, part, None)
    return node


def with_values(cfg: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
    """`cfg` with a copy's own values set (a new config; `cfg` is not changed)."""
    out = copy.deepcopy(cfg)
    out.trainer = dataclasses.replace(out.trainer, copies=None, seeds=None)
    for key, value in values.items():
        *parents, last = key.split(".")
        node: Any = out
        for part in parents:
            node = node[part] if isinstance(node, Mapping) else getattr(node, part)
        if isinstance(node, dict):
            node[last] = value
        else:
            setattr(node, last, value)
    return out


def check_one_graph(graphs: Sequence[Any], specs: Sequence[CopySpec]) -> None:
    """The copies' models must differ in arrays only: a value the model keeps as a constant
    (an attention layer's own dropout rate) cannot vary within one program."""
    for g, spec in zip(graphs[1:], specs[1:]):
        if g != graphs[0]:
            raise ConfigError(
                f"copy {spec.label} builds a model whose structure differs from copy {specs[0].label}'s: this model "
                "keeps a value of it as a constant, not as state; train these values as separate runs "
                "(a sweep with sweep.pack=false)"
            )


def check_values(cfg: TrainConfig) -> None:
    """A copy's vectorizable values are valid (what the run would reject, named, before it starts)."""
    from dlexp.optim import hyperparameters

    hyperparameters(cfg.optimizer)
    for key in ("l1", "l2"):
        if (getattr(cfg.loss, key) or 0) < 0:
            raise ConfigError(f"loss.{key}={getattr(cfg.loss, key)} must be at least 0")
    if not 0.0 <= (cfg.loss.label_smoothing or 0.0) < 1.0:
        raise ConfigError(f"loss.label_smoothing={cfg.loss.label_smoothing} must be in [0, 1)")
    for key, value in cfg.model.items():
        if "dropout" in key and value is not None and not 0.0 <= value < 1.0:
            raise ConfigError(f"model.{key}={value} must be in [0, 1)")
