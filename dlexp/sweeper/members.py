"""The packed job's side: train a group of sweep jobs as copies, write each job's dir as its own run.

The sweeper writes a pack file (`<sweep dir>/packs/<g>.json`) naming the jobs: their job dir,
overrides and vectorizable values, and launches one job with `sweep.members=<file>`. That job
trains the jobs as `trainer.copies` with each copy writing to its own job dir: summary.json,
metrics.jsonl, TensorBoard events and checkpoints, as a run alone would. A job whose values are
invalid falls out with its error; a group too big for the memory budget runs in chunks.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dlexp import rundir
from dlexp.errors import DlexpError

log = logging.getLogger("dlexp")

# What every job of a packed program shares from the program's summary.
SHARED = (
    "steps",
    "epochs",
    "batch_size",
    "steps_per_call",
    "num_params",
    "devices",
    "train_time_s",
    "wall_time_s",
    "checkpoint",
)


@dataclass
class Member:
    num: int  # the job's number in the sweep
    dir: str  # its job dir
    overrides: list[str]
    values: dict[str, Any]  # its own values of the vectorizable keys
    trial: int | None = None  # its Optuna trial's id, in a search


def read_pack(path: str) -> tuple[list[Member], dict[str, Any]]:
    with open(path) as f:
        pack = json.load(f)
    return [Member(**m) for m in pack["members"]], pack.get("search") or {}


def write_pack(path: str, members: list[Member], search: dict[str, Any] | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rundir.write_json(path, {"members": [m.__dict__ for m in members], "search": search or {}})


def member_summary(summary: dict[str, Any], copy: dict[str, Any] | None, run_dir: str, n: int) -> dict[str, Any]:
    """A job's summary.json: its copy's results in a single run's shape, plus what it shares."""
    packed = {"packed": {"program": run_dir, "copies": n}}
    if copy is None:  # the program failed before its copies had results
        error = summary.get("error", "the packed program ended without results")
        return {"status": summary.get("status", "failed"), "error": error, **packed}
    drop = ("seed", "label", "values")
    own = {k: v for k, v in copy.items() if k not in drop}
    if own["status"] == "stopped":  # early stopping: a run alone ends "completed" too
        own["status"] = "completed"
    if summary.get("status") == "preempted" and own["status"] == "completed":
        own["status"] = "preempted"
    return {**own, **{k: summary[k] for k in SHARED if k in summary}, **packed}


def write_member_summaries(summary: dict[str, Any], dirs: list[str], run_dir: str) -> None:
    copies = summary.get("copies") or [None] * len(dirs)
    for d, c in zip(dirs, copies):
        rundir.write_json(os.path.join(d, "summary.json"), member_summary(summary, c, run_dir, len(dirs)))


def read_summary(run_dir: str) -> dict[str, Any]:
    """The summary.json train.run wrote (it writes one however it ends)."""
    try:
        with open(os.path.join(run_dir, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"status": "failed", "error": f"the packed program in {run_dir} left no summary.json"}


def write_failed(member: Member, error: str) -> None:
    os.makedirs(member.dir, exist_ok=True)
    rundir.write_json(os.path.join(member.dir, "summary.json"), {"status": "failed", "error": error})


def checked(cfg: DictConfig, members: list[Member]) -> list[Member]:
    """The members whose values make a valid run; the others are recorded failed with their error."""
    from dlexp.config import typed
    from dlexp.copies import check_values, with_values

    base = typed(cfg)
    ok = []
    for m in members:
        try:
            check_values(with_values(base, m.values))
        except DlexpError as e:
            log.error("job %d (%s): %s", m.num, " ".join(m.overrides), e)
            write_failed(m, str(e))
            continue
        ok.append(m)
    return ok


def chunks(members: list[Member], size: int) -> list[list[Member]]:
    """`members` in runs of at most `size`, as even as possible (equal sizes share one program)."""
    n = -(-len(members) // size)
    per = -(-len(members) // n)
    return [members[i : i + per] for i in range(0, len(members), per)]


def as_copies(cfg: DictConfig, group: list[Member], search: dict[str, Any]) -> DictConfig:
    """The config of a program that trains `group` as copies."""
    out = OmegaConf.merge(
        cfg, {"trainer": {"copies": [m.values for m in group], "seeds": None}, "sweep": {"members": None}}
    )
    assert isinstance(out, DictConfig)
    return with_pruning(out, group, search)


def alone(cfg: DictConfig, member: Member, search: dict[str, Any]) -> DictConfig:
    """The config of one member as a run of its own."""
    out = OmegaConf.merge(cfg, {"sweep": {"members": None}})
    assert isinstance(out, DictConfig)
    with open_dict(out):
        for key, value in member.values.items():
            OmegaConf.update(out, key, value, force_add=True)
    return with_pruning(out, [member], search)


def with_pruning(cfg: DictConfig, group: list[Member], search: dict[str, Any]) -> DictConfig:
    """In an Optuna search, the hook that reports each job's val objective to its trial."""
    if search:
        with open_dict(cfg):
            cfg.callbacks.optuna_pruning = {
                "_target_": "dlexp.sweeper.search.pruning_hook",
                "trials": [m.trial for m in group],
                **search,
            }
    return cfg


def run_members(cfg: DictConfig, run_dir: str) -> float:
    """Trains the pack file's jobs (cfg.sweep.members) as copies of one program; returns the
    best objective among them (the sweeper reads each job's summary.json itself)."""
    from dlexp.jobs import worst_value
    from dlexp.sweeper.memory import TooManyCopies
    from dlexp.train import run

    members, search = read_pack(str(cfg.sweep.members))
    members = checked(cfg, members)
    size = len(members)
    values: list[float] = []
    while members:
        group = chunks(members, size)[0]
        try:
            if len(group) == 1:  # a chunk of one is a run alone, in its job dir
                values.append(run(alone(cfg, group[0], search), group[0].dir)[0])
            else:
                program = os.path.join(run_dir, f"chunk_{group[0].num}")
                try:
                    run(as_copies(cfg, group, search), program, copy_dirs=[m.dir for m in group])
                finally:  # each job's summary.json from the program's, whether it ended or failed
                    summary = read_summary(program)
                    if summary.get("error_type") != "TooManyCopies":  # that one is retried smaller
                        write_member_summaries(summary, [m.dir for m in group], program)
                values += [c["objective"]["value"] for c in summary.get("copies", [])]
        except TooManyCopies as e:
            if e.fit == 0:  # not even one copy fits: none of the group's jobs can run
                for m in members:
                    write_failed(m, str(e))
                break
            log.info("packed jobs: %s; running them %d at a time", e, e.fit)
            size = e.fit
            continue
        except Exception as e:  # the program failed: each member's summary.json says so (above)
            log.error("packed jobs %s failed: %s", [m.num for m in group], e)
        members = members[len(group) :]
    finite = [v for v in values if v is not None]
    mode = str(cfg.objective.mode)
    return (min(finite) if mode == "min" else max(finite)) if finite else worst_value(mode)
