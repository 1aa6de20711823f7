"""Where a run's numbers go: TensorBoard, metrics.jsonl, MLflow (any of them at once).

Every writer takes the same calls (`base.Writer`), so the trainer logs once through a
`Writers` fan-out and never knows where the numbers go. Tag names follow one layout
(`layout.py`); run names and event dirs come from `names.py`. Only process 0 of a
multi-host run is given real writers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from dlexp.config import LoggerConfig
from dlexp.loggers.base import Writer
from dlexp.loggers.names import RunPlace


class Writers:
    """Fans every call out to the writers it holds (possibly none)."""

    def __init__(self, writers: Iterable[Writer] = ()):
        self.writers = list(writers)

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            for w in self.writers:
                getattr(w, name)(*args, **kwargs)

        return call


def make_writers(
    cfg: LoggerConfig, place: RunPlace, is_main_process: bool = True, copy: tuple[str, dict] | None = None
) -> Writers:
    """A run's writers. `copy`: (label, its jsonl tags) for one copy of `trainer.seeds` /
    `trainer.copies`, which gets its own TensorBoard run under the job's (`<tb>/seed_3`) and
    its own rows, tagged, in the job's metrics.jsonl."""
    if not is_main_process:
        return Writers()
    ws: list[Writer] = []
    label, tags = copy if copy else (None, None)
    if cfg.tensorboard:
        from dlexp.loggers.tensorboard import TensorBoardWriter

        ws.append(TensorBoardWriter(os.path.join(place.tensorboard, label) if label else place.tensorboard))
    if cfg.jsonl:
        from dlexp.loggers.jsonl import JsonlWriter

        ws.append(JsonlWriter(os.path.join(place.dir, "metrics.jsonl"), tags))
    if cfg.mlflow:
        from dlexp.loggers.mlflow import MLflowWriter

        ws.append(MLflowWriter(cfg, place, label))
    return Writers(ws)


def copy_writers(cfg: LoggerConfig, place: RunPlace, spec: Any, is_main_process: bool = True) -> Writers:
    """One copy's writers, tagged with its seed (`trainer.seeds`) or its label (`trainer.copies`)."""
    tags = {"seed": spec.values["seed"]} if set(spec.values) == {"seed"} else {"copy": spec.label}
    return make_writers(cfg, place, is_main_process, (spec.label, tags))
