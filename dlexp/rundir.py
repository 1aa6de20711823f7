"""What a run records about itself: run.json, and atomic JSON writes."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from typing import Any

PACKAGES = (
    "dlexp",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "hydra-core",
    "polars",
    "numpy",
    "tensorboardX",
    "scikit-learn",
)


def write_json(path: str, data: Any) -> None:
    """Writes to a temp file, then renames: a reader never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def git_state(cwd: str) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def package_versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def run_info(seed: int, devices: list[Any]) -> dict[str, Any]:
    source_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("dlexp", "train.py")):
        argv[0:1] = ["-m", "dlexp.train"]  # how it was typed
    return {
        "command": [os.path.basename(sys.executable)] + argv,
        "cwd": os.getcwd(),
        "seed": seed,
        "git": git_state(source_dir),
        "packages": package_versions(),
        "python": platform.python_version(),
        "host": platform.node(),
        "devices": [
            {"id": d.id, "kind": d.device_kind, "platform": d.platform, "process": d.process_index} for d in devices
        ],
    }
