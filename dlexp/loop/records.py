"""What the loop carries from call to call, what hooks see, and the summary it ends with.

A single run is one copy; `trainer.seeds` runs several in one program. Each copy keeps
its own record (status, best, last metrics), so hooks, checkpoints and the summary treat
both alike. A checkpoint of `Loop` (its state pytree plus `meta`) is a checkpoint of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlexp.errors import TrainingError
from dlexp.loop.plan import Plan
from dlexp.models.split import SplitModel
from dlexp.parallel import Layout
from dlexp.tasks import Task

log = logging.getLogger("dlexp")
RUNNING, FAILED = "running", "failed"  # a copy's status, besides "stopped" (early stopping sets it)


@dataclass
class CopyRecord:
    seed: int
    label: str = ""  # what the copy is called (trainer.copies: its values; trainer.seeds: seed_<s>)
    values: dict = field(default_factory=dict)  # its own values of vectorizable keys (dlexp/copies.py)
    status: str = RUNNING
    best_value: float | None = None
    best_step: int = -1
    best_val: dict = field(default_factory=dict)
    last_train: dict = field(default_factory=dict)
    last_val: dict = field(default_factory=dict)
    skipped_steps: int = 0  # steps the non-finite guard undid (nan_policy=skip)
    error: str | None = None  # why the copy failed

    def value(self, metric: str) -> float:
        """The latest value of objective.metric ("val/loss", "train/accuracy", ...)."""
        split, _, name = metric.partition("/")
        return (self.last_val if split == "val" else self.last_train).get(name, float("nan"))


@dataclass
class Loop:
    """Everything that changes as a run goes: what a checkpoint must hold to resume."""

    state: Any  # the task's state pytree on device (copies: stacked along a leading axis)
    copies: list[CopyRecord]
    step: int = 0
    epoch: int = 0
    best_state: Any = None  # (params, rest) of each copy's best evaluation, on device
    stop: bool = False  # a hook (preemption) or the last copy stopping ends the loop after this call
    status: str = RUNNING
    extra: dict = field(default_factory=dict)  # hook state a checkpoint keeps (early-stopping counters)

    def fail(self, copy: CopyRecord, error: str) -> None:
        copy.status, copy.error = FAILED, error
        log.warning("%s failed: %s", copy.label or f"seed {copy.seed}", error)

    def raise_if_all_failed(self) -> None:
        """Ends the run with the first copy's error once every copy has failed."""
        if all(c.status == FAILED for c in self.copies):
            first = self.copies[0]
            several = f"every copy failed; {first.label}: {first.error}"
            raise TrainingError(first.error if len(self.copies) == 1 else several)

    def meta(self) -> dict:
        """The host side of the loop, as JSON-ready values."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "status": self.status,
            "extra": self.extra,
            "copies": [dataclasses.asdict(c) for c in self.copies],
        }

    def load_meta(self, meta: dict) -> None:
        self.step, self.epoch, self.extra = meta["step"], meta["epoch"], meta["extra"]
        self.copies = [CopyRecord(**c) for c in meta["copies"]]
        self.status = RUNNING


@dataclass(frozen=True)
class Context:
    """What hooks may look at: the parts of the run, fixed for its length."""

    task: Task
    model: SplitModel
    plan: Plan
    layout: Layout
    writers: Any  # the run's writers (copies: copy 0's); `copy_writers` has one per copy
    copy_writers: list
    objective: tuple[str, str]  # (metric, mode)
    data: Any
    seeds: list[int]


def copy_summary(c: CopyRecord, test: dict, objective: tuple[str, str], step: int) -> dict[str, Any]:
    return {
        "seed": c.seed,
        "label": c.label,
        "values": c.values,
        "status": c.status if c.status != RUNNING else "completed",
        "objective": {"metric": objective[0], "mode": objective[1], "value": c.best_value},
        "best": {"step": c.best_step if c.best_value is not None else step, "val": c.best_val},
        "final": {"step": step, "train": c.last_train, "val": c.last_val},
        "test": test,
        **({"skipped_steps": c.skipped_steps} if c.skipped_steps else {}),
        **({"error": c.error} if c.error else {}),
    }


def results(loop: Loop, tests: list[dict], objective: tuple[str, str], *, copies: bool) -> dict[str, Any]:
    """The summary's results: a single run's own, or each copy's with their mean and std."""
    per_copy = [copy_summary(c, t, objective, loop.step) for c, t in zip(loop.copies, tests)]
    if copies:
        return {"status": loop.status, **copies_summary(per_copy, objective)}
    drop = ("seed", "status", "label", "values")
    status = "pruned" if loop.copies[0].status == "pruned" else loop.status  # its search stopped it
    return {"status": status, **{k: v for k, v in per_copy[0].items() if k not in drop}}


def flat_metrics(copy: dict) -> dict[str, float]:
    """The numbers a copy is compared by: test/* and val_best/*."""
    return {
        **{f"test/{k}": v for k, v in copy["test"].items()},
        **{f"val_best/{k}": v for k, v in copy["best"]["val"].items()},
    }


def copies_summary(copies: list[dict], objective: tuple[str, str]) -> dict[str, Any]:
    """The mean and std over the copies that did not fail."""
    ok = [c for c in copies if c["status"] != FAILED]
    values = [c["objective"]["value"] for c in ok]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    rows = [flat_metrics(c) for c in ok]
    keys = [k for k in rows[0] if all(k in r for r in rows)] if rows else []
    return {
        "seeds": [c["seed"] for c in copies],
        "objective": {
            "metric": objective[0],
            "mode": objective[1],
            "value": float(np.mean(finite)) if finite and len(finite) == len(ok) else float("nan"),
            "std": float(np.std(finite)) if finite and len(finite) == len(ok) else float("nan"),
        },
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
        "std": {k: float(np.std([r[k] for r in rows])) for k in keys},
        "failed_copies": [c["label"] for c in copies if c["status"] == FAILED],
        "copies": copies,
    }


def short(train: dict, val: dict) -> dict[str, str]:
    """The few numbers the progress bar shows."""
    out = {"loss": f"{train['loss']:.4f}"} if "loss" in train else {}
    for k in ("accuracy", "r2"):
        if k in train:
            out[k] = f"{train[k]:.3f}"
        if k in val:
            out[f"val_{k}"] = f"{val[k]:.3f}"
    return out


def make_progress(enabled: bool, total: int, initial: int = 0):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        unit="step",
        dynamic_ncols=True,
        leave=False,
        mininterval=0.5,
        smoothing=0.1,
    )
