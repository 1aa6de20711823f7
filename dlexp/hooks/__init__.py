"""Hooks: checkpoints, early stopping, preemption, profiling, plots, inspection, and yours.

The `callbacks` config group (conf/callbacks/) lists a run's hooks in the order they run at
each event: the ones that may stop the loop first, the checkpoint last, so it saves the
state they stopped at. Each entry is a `_target_` (a Hook class, or a factory returning a
Hook, several, or None for "off") plus its arguments; `build_hooks` passes `cfg` (the
run's typed config) and `run_dir` to a target that names them. The interface is
`dlexp.hooks.base.Hook`.
"""

from __future__ import annotations

import logging

from dlexp.config import TrainConfig, call_target
from dlexp.errors import ConfigError
from dlexp.hooks.base import Hook

log = logging.getLogger("dlexp")

__all__ = ["Hook", "build_hooks"]


def build_hooks(
    cfg: TrainConfig,
    run_dir: str,
    *,
    copies: bool = False,
    copy_dirs: list[str] | None = None,
    partial_data: bool = False,
) -> list[Hook]:
    """The hooks `cfg.callbacks` lists; `copy_dirs`: each copy's own job dir (a packed sweep);
    `partial_data`: this process holds only its shards of the data (trainer.data_shards)."""
    hooks: list[Hook] = []
    for name, node in cfg.callbacks.items():
        if node is None:  # callbacks.<name>=null turns a hook off
            continue
        key = f"callbacks.{name}"
        made = call_target(node, key, {"cfg": cfg, "run_dir": run_dir, "copy_dirs": copy_dirs})
        for hook in made if isinstance(made, (list, tuple)) else [made]:
            if hook is None:
                continue
            if not isinstance(hook, Hook):
                raise ConfigError(
                    f"{key}._target_={node['_target_']!r} made a {type(hook).__name__}; it must be a "
                    "dlexp.hooks.Hook (or a factory returning Hooks)"
                )
            hooks.append(hook)
    if copies:
        left = sorted({type(h).__name__ for h in hooks if not h.copies_ok})
        if left:
            log.info("copies: %s work on single runs and are left out", ", ".join(left))
        hooks = [h for h in hooks if h.copies_ok]
    if partial_data:
        left = sorted({type(h).__name__ for h in hooks if h.reads_splits})
        if left:
            log.info("data split over processes: %s read whole splits and are left out", ", ".join(left))
        hooks = [h for h in hooks if not h.reads_splits]
    return hooks
