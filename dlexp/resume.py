"""Which run dir a run writes to and which checkpoints it continues from.

The order (big_vision's, with the reason): a run dir that already holds checkpoints is
continued (the same command again, a requeued job, `hydra.run.dir=<dir>`); else
`trainer.resume=<dir>` names the checkpoints to start from; else training starts
fresh. A run dir that holds an earlier run with nothing to resume (its summary.json
but no checkpoint), or that another live process is using, is a clear error, never
overwritten. Hydra writes `.hydra/` before the job starts, so `RunDirGuard` (a Hydra
callback) makes the same check first.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback

from dlexp.checkpoint import saved_steps
from dlexp.errors import ConfigError

LOCK = ".lock"


def resume_source(cfg: Any, run_dir: str) -> str | None:
    """The run dir whose checkpoints this run continues from, or None to start fresh."""
    wanted = cfg.trainer.resume
    if not cfg.trainer.checkpoint.enabled:
        if wanted:
            raise ConfigError(f"trainer.resume={wanted!r} needs trainer.checkpoint.enabled=true")
        return None
    if saved_steps(run_dir):
        return run_dir
    if wanted:
        if not os.path.isdir(wanted):
            raise ConfigError(f"trainer.resume={wanted!r}: no such run dir (cwd: {os.getcwd()})")
        if not saved_steps(wanted):
            raise ConfigError(f"trainer.resume={wanted!r} holds no checkpoint (looked in {wanted}/checkpoints)")
        return wanted
    return None


def check_run_dir(run_dir: str, checkpoints_enabled: bool = True) -> None:
    """Raises when starting in `run_dir` would overwrite an earlier run or share it with a live one."""
    owner = lock_owner(run_dir)
    if owner is not None:
        raise ConfigError(
            f"run dir {run_dir} is in use by process {owner['pid']} on {owner['host']} (another run started "
            "into the same dir); set name=... or hydra.run.dir=... to use another dir"
        )
    summary = os.path.join(run_dir, "summary.json")
    if not os.path.exists(summary) or (checkpoints_enabled and saved_steps(run_dir)):
        return
    try:
        with open(summary) as f:
            status = json.load(f).get("status")
    except (OSError, ValueError):
        status = None
    if status != "failed":  # a failed run with no checkpoint has nothing to lose
        raise ConfigError(
            f"run dir {run_dir} already holds a run (summary.json, status {status}) and no checkpoint to resume "
            "from; choose another hydra.run.dir (or name=...), or delete that dir to run there again"
        )


def lock_owner(run_dir: str) -> dict | None:
    """The live process holding run_dir's lock on this host, or None (a killed run's lock is stale)."""
    try:
        with open(os.path.join(run_dir, LOCK)) as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return None
    if owner.get("host") != platform.node() or owner.get("pid") == os.getpid():
        return None  # another host's lock cannot be checked: a requeued job must be able to go on
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return None
    except (PermissionError, ValueError, KeyError, TypeError):
        pass
    return owner


def claim(run_dir: str) -> Callable[[], None]:
    """Writes run_dir's lock; returns the function that removes it."""
    path = os.path.join(run_dir, LOCK)
    with open(path, "w") as f:
        json.dump({"pid": os.getpid(), "host": platform.node()}, f)

    def release() -> None:
        try:
            os.remove(path)
        except OSError:
            pass

    return release


def add_run_dir_for_resume(args: list[str]) -> list[str]:
    """`trainer.resume=<dir>` on the command line continues in <dir> itself (unless a run dir or
    a sweep is given): Hydra is told `hydra.run.dir=<dir>`."""
    resume = [a.split("=", 1)[1] for a in args if a.startswith("trainer.resume=")]
    if not resume or not resume[-1] or resume[-1] == "null":
        return args
    if any(a.startswith("hydra.run.dir=") for a in args) or any(a in ("-m", "--multirun") for a in args):
        return args
    return [*args, f"hydra.run.dir={resume[-1]}"]


class RunDirGuard(Callback):
    """Hydra callback: refuse a clashing run dir before Hydra writes .hydra/ into it."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            enabled = bool(config.trainer.checkpoint.enabled)
            check_run_dir(str(config.hydra.run.dir), enabled)
        except ConfigError as e:
            print(f"dlexp error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
