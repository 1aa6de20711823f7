"""How long a run trains and when it logs and evaluates: fixed before anything compiles."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from dlexp.config import TrainerConfig
from dlexp.errors import ConfigError

log = logging.getLogger("dlexp")


@dataclass(frozen=True)
class Plan:
    batch_size: int  # the batch actually used (a batch larger than the train split is shrunk)
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    log_every: int

    @property
    def epochs(self) -> float:
        return self.total_steps / self.steps_per_epoch

    def in_epoch(self, step: int, epoch: int) -> int:
        """The step's position within `epoch` (where the loaders start)."""
        return step - epoch * self.steps_per_epoch

    def epoch_after(self, step: int, epoch: int) -> int:
        """The epoch a call that ended at `step` leaves the loop in."""
        return epoch + int(self.in_epoch(step, epoch) >= self.steps_per_epoch)

    def call_length(self, step: int, epoch: int, most: int) -> int:
        """Steps of the next compiled call: `most` where they fit before the next epoch, log or
        eval boundary, else one. A call never crosses a boundary, so the cadences stay exact for
        any steps_per_call, and a run compiles two call lengths at most."""
        room = min(
            self.steps_per_epoch - self.in_epoch(step, epoch),
            self.total_steps - step,
            self.log_every - step % self.log_every,
            self.eval_every - step % self.eval_every,
        )
        return most if room >= most else 1

    def crossed(self, step: int, last: int, every: int) -> bool:
        """Whether the steps since `last` reached a multiple of `every` (or the run's end)."""
        return step // every > last // every or step == self.total_steps


def plan_steps(cfg: TrainerConfig, n_train: int, num_devices: int = 1, shard_sizes: list[int] | None = None) -> Plan:
    """Resolves epochs/steps/cadences; the one place the batch size is checked.
    shard_sizes: the train rows of each data shard (trainer.data_shards; each batch takes
    an equal part from every shard, and an epoch lasts as long as the smallest gives)."""
    batch = int(cfg.batch_size)
    if batch < 1:
        raise ConfigError(f"trainer.batch_size={batch} must be at least 1")
    if shard_sizes:
        return _plan(cfg, batch, shard_steps(batch, shard_sizes))
    if batch > n_train:
        used = max(num_devices, n_train // num_devices * num_devices)
        log.warning(
            "trainer.batch_size=%d is larger than the train split (%d rows): using batches of %d", batch, n_train, used
        )
        batch = used
    if batch % num_devices:
        raise ConfigError(
            f"trainer.batch_size={batch} does not split over {num_devices} devices; use a multiple of {num_devices} "
            f"(e.g. {max(num_devices, batch // num_devices * num_devices)}) or trainer.parallel=single"
        )
    return _plan(cfg, batch, max(1, n_train // batch))


def shard_steps(batch: int, shard_sizes: list[int]) -> int:
    """Steps per epoch of sharded data, or a clear error where a shard cannot fill its part."""
    count = len(shard_sizes)
    if batch % count:
        raise ConfigError(
            f"trainer.batch_size={batch} does not split over trainer.data_shards={count}; use a multiple of {count}"
        )
    part = batch // count
    small = min(range(count), key=lambda p: shard_sizes[p])
    if shard_sizes[small] < part:
        raise ConfigError(
            f"data shard {small} holds {shard_sizes[small]} train rows, fewer than its {part} rows of each batch "
            f"(trainer.batch_size={batch} over trainer.data_shards={count}): lower one of the two"
        )
    return min(n // part for n in shard_sizes)


def _plan(cfg: TrainerConfig, batch: int, spe: int) -> Plan:
    if cfg.steps is not None:
        if cfg.steps < 1:
            raise ConfigError(f"trainer.steps={cfg.steps} must be at least 1 (or null to train by epochs)")
        total = int(cfg.steps)
    else:
        if cfg.epochs < 1:
            raise ConfigError(f"trainer.epochs={cfg.epochs} must be at least 1")
        total = int(cfg.epochs) * spe
    if cfg.log_every < 1:
        raise ConfigError(f"trainer.log_every={cfg.log_every} must be at least 1")
    eval_every = int(cfg.eval_every) if cfg.eval_every else spe
    if eval_every < 1:
        raise ConfigError(f"trainer.eval_every={cfg.eval_every} must be at least 1 (or null: each epoch)")
    return Plan(batch, spe, total, eval_every, int(cfg.log_every))


def parse_objective(metric: str, metric_names: tuple[str, ...], task_name: str) -> tuple[str, str]:
    """objective.metric as (split, name), checked against the task's metrics."""
    split, _, name = metric.partition("/")
    if split not in ("train", "val") or name not in metric_names:
        valid = ", ".join(f"val/{m}" for m in metric_names)
        raise ConfigError(f"objective.metric={metric!r} is not a metric of {task_name}; valid: {valid}")
    return split, name


def better(a: float, b: float | None, mode: str) -> bool:
    """Whether `a` beats the best so far `b` (a non-finite value never does)."""
    if b is None or not math.isfinite(b):
        return math.isfinite(a)
    return a < b if mode == "min" else a > b
