"""What a run is called in TensorBoard and MLflow, and where its event files go.

A single run keeps its events in `<run dir>/tb`. A sweep job's run is named by what the sweep
varies (`model=mlp,optimizer.lr=0.001`) and written to `<sweep dir>/tb/<name>`, so that
`tensorboard --logdir <sweep dir>/tb` lists the runs by their values, not by job number.
The sweeper records which keys it varies in `<sweep dir>/sweep.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

SWEEP_FILE = "sweep.json"  # {"swept": [keys]}: written by the sweeper before any job starts
MAX_NAME = 64  # longer names lose their keys' prefixes (optimizer.lr -> lr), then are cut


@dataclass(frozen=True)
class RunPlace:
    """Where a run's records go and what they are called."""

    dir: str  # the run's own dir: summary.json, metrics.jsonl, checkpoints
    name: str  # its name in TensorBoard's run list and in MLflow
    tensorboard: str  # the dir of its event files
    sweep_dir: str | None = None  # the sweep it belongs to (None: a run on its own)
    swept: tuple[str, ...] = ()  # the keys the sweep varies (a job's HParams axes)


def write_swept(sweep_dir: str, keys: list[str]) -> None:
    os.makedirs(sweep_dir, exist_ok=True)
    with open(os.path.join(sweep_dir, SWEEP_FILE), "w") as f:
        json.dump({"swept": keys}, f)


def sweep_of(run_dir: str) -> str | None:
    """The sweep dir a job dir belongs to: Hydra and dlexp's sweeper write multirun.yaml there."""
    parent = os.path.dirname(os.path.abspath(run_dir))
    return parent if os.path.exists(os.path.join(parent, "multirun.yaml")) else None


def swept_keys(sweep_dir: str) -> list[str] | None:
    try:
        with open(os.path.join(sweep_dir, SWEEP_FILE)) as f:
            return [str(k) for k in json.load(f)["swept"]]
    except (OSError, ValueError, KeyError):
        return None  # another sweeper: every override of a job names it


def split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def run_name(overrides: list[str], keys: list[str] | None = None) -> str:
    """`key=value,...` over the overrides of `keys` (all when None), shortened when long."""
    pairs = [split_override(o) for o in overrides]
    pairs = [(k, v) for k, v in pairs if (keys is None or k in keys) and not k.startswith("hydra")]
    if not pairs:
        return "defaults"
    name = ",".join(f"{k}={v}" for k, v in pairs)
    if len(name) > MAX_NAME:
        leaves = [k.rsplit(".", 1)[-1] for k, _ in pairs]
        if len(set(leaves)) == len(leaves):  # optimizer.lr -> lr only where that stays unambiguous
            name = ",".join(f"{k}={v}" for k, (_, v) in zip(leaves, pairs))
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 1] + "…"
    return name.replace(os.sep, "_")  # a path value must not make a nested run


def place_of(run_dir: str, overrides: list[str]) -> RunPlace:
    """A run's place: under its sweep's tb/ when it is a sweep job, else its own tb/."""
    sweep = sweep_of(run_dir)
    if sweep is None:
        return RunPlace(run_dir, run_name(overrides), os.path.join(run_dir, "tb"))
    keys = swept_keys(sweep)
    name = claim_name(sweep, run_name(overrides, keys), os.path.basename(os.path.normpath(run_dir)))
    return RunPlace(run_dir, name, os.path.join(sweep, "tb", name), sweep, tuple(keys or ()))


def claim_name(sweep_dir: str, name: str, job: str) -> str:
    """`name`, or `name#<job>` when another job of the sweep holds it (equal values in two jobs).
    The claim is a hard link made atomically, so jobs started together cannot both take a name;
    a job run again (resumed) finds its own claim."""
    claims = os.path.join(sweep_dir, "tb", ".claims")
    os.makedirs(claims, exist_ok=True)
    mine = os.path.join(claims, f".job-{job}")
    with open(mine, "w") as f:
        f.write(job)
    claim = os.path.join(claims, name)
    try:
        os.link(mine, claim)
        return name
    except FileExistsError:
        with open(claim) as f:
            return name if f.read() == job else f"{name}#{job}"


def event_dir(run_dir: str) -> str:
    """A run's TensorBoard dir, as its run.json records it (<run>/tb before it has one)."""
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            return str(json.load(f).get("tensorboard") or os.path.join(run_dir, "tb"))
    except (OSError, ValueError):
        return os.path.join(run_dir, "tb")
