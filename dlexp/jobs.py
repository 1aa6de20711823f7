"""What one job of a sweep (`python -m dlexp.train -m ...`) does that a single run does not.

- Its share of the machine: under the joblib launcher several jobs run at once on one
  host, so each claims a slot and, before JAX starts, is pinned to its own CPU cores
  (the affinity mask, which XLA's thread pools and `parallel.host_cores` read) and its
  own GPU(s) (CUDA_VISIBLE_DEVICES), with GPU memory preallocation off.
- Its failure: a job that fails is recorded (summary.json, status failed, the error)
  and returns the worst objective value instead of raising, so the launcher and the
  sweeper go on with the other jobs; `dlexp.callbacks.SweepReport` makes the sweep
  exit non-zero at the end. Optuna records the trial with that value (inf for min,
  -inf for max), which tells TPE to stay away from it.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import traceback
from typing import Any

log = logging.getLogger("dlexp")

# What a job's share is made of; run.json records them.
JOB_ENV = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "OMP_NUM_THREADS", "DLEXP_JOB_SLOT")
_claimed: dict[str, Any] | None = None  # a joblib worker runs many jobs; JAX starts once per worker


def worst_value(mode: Any) -> float:
    return math.inf if getattr(mode, "value", mode) == "min" else -math.inf


def job_failed(cfg: Any, run_dir: str, error: BaseException) -> float:
    """Logs a failed job and makes sure its summary.json says so; returns the worst objective."""
    from dlexp.errors import DlexpError
    from dlexp.rundir import write_json

    if isinstance(error, DlexpError):
        log.error("dlexp error: %s", error)
    else:
        log.error("job failed:\n%s", "".join(traceback.format_exception(error)))
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):  # failed before the run could write one
        os.makedirs(run_dir, exist_ok=True)
        write_json(
            path, {"status": "failed", "error": f"{type(error).__name__}: {error}", "error_type": type(error).__name__}
        )
    return worst_value(cfg.objective.mode)


def parallel_slots(launcher: Any) -> int:
    """How many jobs the launcher runs at once on this host (1: the machine is not shared)."""
    target = str(launcher.get("_target_", ""))
    if "JoblibLauncher" not in target:
        return 1
    n = int(launcher.get("n_jobs") or 1)
    if n < 0:  # joblib: -1 is every core, -2 all but one, ...
        n = max(1, (os.cpu_count() or 1) + 1 + n)
    return n


def claim_slot(slots_dir: str, n_slots: int) -> int:
    """A slot no live process holds, claimed atomically (O_EXCL) so parallel jobs get different ones."""
    os.makedirs(slots_dir, exist_ok=True)
    for _ in range(2):
        for slot in range(n_slots):
            path = os.path.join(slots_dir, str(slot))
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not _alive(path):
                    try:
                        os.remove(path)  # its worker died: free again (retried on the next pass)
                    except FileNotFoundError:
                        pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return slot
    return os.getpid() % n_slots  # every slot held: share one


def _alive(path: str) -> bool:
    try:
        with open(path) as f:
            os.kill(int(f.read().strip() or 0), 0)
        return True
    except (OSError, ValueError):
        return False


def visible_gpus() -> list[str]:
    """GPU ids without starting JAX: CUDA_VISIBLE_DEVICES, else nvidia-smi, else none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def share_of(items: list, slot: int, n_slots: int) -> list:
    """Slot `slot`'s even share of `items` (one item, round robin, when there are fewer than slots)."""
    if not items:
        return []
    if n_slots > len(items):
        return [items[slot % len(items)]]
    per = len(items) // n_slots
    return items[slot * per : (slot + 1) * per]


def share_machine(hydra_cfg: Any) -> dict[str, Any] | None:
    """Pins this job to its slot's cores and GPUs; call before JAX starts. None: not shared."""
    global _claimed
    n = parallel_slots(hydra_cfg.launcher)
    if n <= 1:
        return None
    if _claimed is not None:  # a reused worker: JAX is already up on this share
        return _claimed
    slot = claim_slot(os.path.join(hydra_cfg.sweep.dir, ".slots"), n)
    cores = share_of(sorted(os.sched_getaffinity(0)), slot, n)
    os.sched_setaffinity(0, cores)
    os.environ["OMP_NUM_THREADS"] = str(len(cores))
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # jobs share GPU memory
    gpus = share_of(visible_gpus(), slot, n)
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    os.environ["DLEXP_JOB_SLOT"] = f"{slot}/{n}"
    _claimed = {"slot": slot, "slots": n, "cpu_cores": cores, "gpus": gpus}
    log.info("job slot %d of %d: cpu cores %s, gpus %s", slot, n, cores, gpus or "none")
    return _claimed


def job_resources() -> dict[str, Any]:
    """What this process may use: its cores and the environment that decided its devices."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cores = list(range(os.cpu_count() or 1))
    return {"cpu_cores": cores, "env": {k: os.environ[k] for k in JOB_ENV if k in os.environ}}
