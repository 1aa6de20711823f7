"""Orbax checkpoints in <run dir>/checkpoints: save, keep the last k and the best, restore.

One checkpoint is three items: `state` (the task's state pytree: params, rest,
optimizer, step; stacked along a leading axis for copies), `best` (params and rest of
the best evaluation so far) and `meta` (JSON: the rest of the loop's `Loop`: step,
epoch, each copy's best metric and status, early-stopping counters, ...). The batch order
is a pure function of (seed, epoch) and dropout keys
are fold_in(key, step), so these items resume a run exactly. Because every checkpoint
carries the best parameters, keeping the last k checkpoints keeps the best as well,
whatever the eval and save cadences (evaluation and inference restore `best`).

Orbax writes each step into a temporary directory and renames it when complete, so a
run killed mid-save leaves no half checkpoint behind; one damaged later (a truncated
file) fails to restore and the previous one is used instead, with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from dlexp.errors import ConfigError, DlexpError

log = logging.getLogger("dlexp")
logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save and thread at INFO


class _OrbaxNoise(logging.Filter):
    """Drops what Orbax and asyncio say about a checkpoint dlexp judges itself: a step saved
    without its optional _CHECKPOINT_METADATA (timestamps; a kill during the save; the step
    restores, or fails with dlexp's own warning), and the sibling reads of a restore that failed
    (`latest_good` warns once per step and tries the previous one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith("Metadata file does not exist") and f"{os.sep}{SUBDIR}{os.sep}" in text:
            return False
        return not ("exception was never retrieved" in text and any(d in text for d in _restored_dirs))


_restored_dirs: set[str] = set()  # checkpoint dirs `latest_good` has read in this process


def _quiet_closed_loop(previous: Callable) -> Callable:
    """sys.unraisablehook that drops the "Event loop is closed" callbacks TensorStore sends
    after a failed restore, once Orbax has closed its loop (a traceback per array otherwise)."""

    def hook(u: Any) -> None:
        if _restored_dirs and isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed":
            return
        previous(u)

    return hook


logging.getLogger("absl").addFilter(_OrbaxNoise())
logging.getLogger("asyncio").addFilter(_OrbaxNoise())
sys.unraisablehook = _quiet_closed_loop(sys.unraisablehook)

SUBDIR = "checkpoints"


class CheckpointError(DlexpError):
    """No checkpoint of a run dir can be restored."""


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(os.path.abspath(run_dir), SUBDIR)


def saved_steps(run_dir: str) -> list[int]:
    """Steps of the complete checkpoints under run_dir (no Orbax needed: numeric dir names)."""
    d = checkpoint_dir(run_dir)
    if not os.path.isdir(d):
        return []
    return sorted(int(n) for n in os.listdir(d) if n.isdigit() and os.path.isdir(os.path.join(d, n)))


def abstract_of(tree: Any) -> Any:
    """Shapes, dtypes and shardings of a pytree of arrays: the target a restore fills."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _pytree_restore(abstract: Any, partial: bool = False) -> ocp.args.PyTreeRestore:
    return ocp.args.PyTreeRestore(
        abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract), partial_restore=partial
    )


def _shapes(tree: Any) -> dict[str, tuple]:
    """{'params.body.layers.0.kernel': shape}: paths spelt the way Orbax metadata spells them."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = {}
    for path, leaf in flat:
        key = ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)
        out[key] = tuple(getattr(leaf, "shape", ()))
    return out


class Checkpoints:
    """A CheckpointManager over one run dir, keeping the last `keep` steps."""

    def __init__(self, run_dir: str, *, keep: int = 2, async_save: bool = True, read_only: bool = False):
        if keep < 1:
            raise ConfigError(f"trainer.checkpoint.keep={keep} must be at least 1")
        self.directory = checkpoint_dir(run_dir)
        options = ocp.CheckpointManagerOptions(  # read-only: the values Orbax would set with a warning
            max_to_keep=None if read_only else keep,
            enable_async_checkpointing=async_save,
            read_only=read_only,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            save_interval_steps=0 if read_only else 1,
        )
        handlers = {
            "state": ocp.PyTreeCheckpointHandler(),
            "best": ocp.PyTreeCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
        }
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.ERROR if read_only else level)  # "directory is read only": as asked
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
        finally:
            absl.setLevel(level)

    # ------------------------------------------------------------------ save
    def save(self, step: int, state: Any, best: dict, meta: dict) -> None:
        """Saves copies of `state` and `best` (the next train step donates its buffers; host arrays are
        copies already) and `meta`."""
        state, best = jax.tree.map(lambda a: a if isinstance(a, np.ndarray) else jnp.copy(a), (state, best))
        self.manager.save(
            step,
            force=True,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeSave(state),
                best=ocp.args.PyTreeSave(best),
                meta=ocp.args.JsonSave(json_safe(meta)),
            ),
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    # ------------------------------------------------------------------ restore
    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict, dict]:
        """(state, best, meta) of one step; a state that does not fit `abstract_state` is a ConfigError."""
        self.check_fits(step, abstract_state)
        abstract_best = {"params": abstract_state["params"], "rest": abstract_state["rest"]}
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=_pytree_restore(abstract_state), best=_pytree_restore(abstract_best), meta=ocp.args.JsonRestore()
            ),
        )
        return out["state"], out["best"], out["meta"]

    def restore_model(self, step: int, abstract: dict, item: str = "best") -> dict:
        """{params, rest} of a step, the best so far or the current (`item="state"`): no optimizer needed."""
        self.check_fits(step, abstract, item)
        return self.manager.restore(step, args=ocp.args.Composite(**{item: _pytree_restore(abstract, partial=True)}))[
            item
        ]

    def check_fits(self, step: int, abstract: Any, item: str = "state") -> None:
        """Names the first array whose shape differs between the checkpoint and this config."""
        saved = _shapes(self.manager.item_metadata(step)[item].tree)
        for key, shape in sorted(_shapes(abstract).items(), key=lambda kv: not kv[0].startswith("params")):
            if key not in saved or tuple(saved[key]) != shape:
                found = "missing" if key not in saved else f"shape {tuple(saved[key])}"
                raise ConfigError(
                    f"the checkpoint at step {step} in {self.directory} does not fit this config: {key} is {found} "
                    f"there but {shape} here; resume with the model and optimizer it was trained with, "
                    "or start in another run dir"
                )

    def set_aside(self, after: int) -> None:
        """Renames the steps after `after` (damaged ones) to <step>.damaged, so the run can save them anew."""
        for step in self.steps():
            if step > after:
                src = os.path.join(self.directory, str(step))
                os.replace(src, f"{src}.damaged-{int(time.time())}")
                log.warning("moved the damaged checkpoint %s aside", src)
        self.manager.reload()

    def latest_good(self, restore: Callable[[int], Any]) -> tuple[int, Any]:
        """(step, restore(step)) for the newest step that restores; a damaged one is skipped with a warning."""
        errors = []
        _restored_dirs.add(self.directory)
        for step in reversed(self.steps()):
            try:
                return step, restore(step)
            except ConfigError:
                raise
            except Exception as e:  # a truncated or missing file: Orbax and TensorStore raise many kinds
                errors.append(f"step {step}: {type(e).__name__}: {reason(e)}")
                log.warning(
                    "checkpoint at step %d in %s cannot be restored (%s); trying the previous one",
                    step,
                    self.directory,
                    errors[-1],
                )
        raise CheckpointError(
            f"no checkpoint in {self.directory} can be restored ({'; '.join(errors) or 'there are none'}); "
            "delete the directory to start over"
        )


def reason(e: BaseException, limit: int = 200) -> str:
    """An exception's first line for a one-line message, without object reprs
    (`<bound method pybind11_...>`) or TensorStore's JSON spec."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = re.sub(r"\s*\[tensorstore_spec=.*", "", text)
    pattern = re.compile(r"<[^<>]*(?:bound method|object at| at 0x)[^<>]*>")  # innermost first: reprs nest
    while pattern.search(text):
        text = pattern.sub("", text)
    return re.sub(r"\s+", " ", text).strip(" :")[:limit] or "no details"


def json_safe(x: Any) -> Any:
    """Meta as strict JSON: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray)):
        x = x.item() if np.ndim(x) == 0 else x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def json_restored(x: Any) -> Any:
    """The inverse of json_safe ('nan' -> nan, in nested dicts and lists too)."""
    if isinstance(x, dict):
        return {k: json_restored(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_restored(v) for v in x]
    return float(x) if isinstance(x, str) and x in ("nan", "inf", "-inf") else x
