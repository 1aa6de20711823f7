"""The sweep: jobs from a grid or an Optuna search, grouped, launched, and read back.

Each batch of jobs (a whole grid, or the trials Optuna asks for at once) is composed job by
job. Jobs that compose into packable, equal-but-for-vectorizable-values configs are written
to a pack file and launched as one job (`sweep.members=<file>`); the others are launched as
Hydra's basic sweeper would. Every job keeps its number and its dir, `<sweep dir>/<num>`,
and its outcome is read from its summary.json, whatever launcher ran it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dlexp.errors import ConfigError
from dlexp.sweeper.grouping import flat, group_key, own_values, packable, task_config
from dlexp.sweeper.members import Member, write_failed, write_pack

log = logging.getLogger("dlexp")


@dataclass
class Outcome:
    """What a job ended with, read from its summary.json."""

    num: int
    status: str  # completed | failed | pruned | missing
    value: float | None
    error: str | None = None


class Sweep:
    """One multirun: `config` is the sweep's composed config, `launcher` Hydra's launcher."""

    def __init__(self, config: DictConfig, hydra_context: Any, launcher: Any):
        self.config, self.hydra_context, self.launcher = config, hydra_context, launcher
        self.dir = os.path.abspath(str(config.hydra.sweep.dir))
        self.launched = 0  # Hydra's job index across launches (its job ids)
        self.composed: dict[str, DictConfig] = {}  # by the group options a job chooses
        self.groups: dict[str, bool] = {}  # override key -> whether it names a config group
        os.makedirs(self.dir, exist_ok=True)
        OmegaConf.save(config, os.path.join(self.dir, "multirun.yaml"))

    def record_swept(self, overrides: list[Any]) -> None:
        """The keys this sweep varies, for its jobs' run names and HParams axes (dlexp/loggers/names.py)."""
        from dlexp.loggers.names import write_swept

        write_swept(self.dir, [o.get_key_element().lstrip("+~") for o in overrides if o.is_sweep_override()])

    def job_dir(self, num: int) -> str:
        return os.path.join(self.dir, str(num))

    def compose(self, overrides: list[str]) -> DictConfig:
        """A job's config. Jobs that choose the same config group options compose once: the others
        apply their value overrides to a copy, as Hydra applies them after composing (a full
        composition per job takes a third of a second)."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.override_parser.overrides_parser import OverridesParser

        loader = self.hydra_context.config_loader
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(list(overrides))
        structural = [str(o.input_line) for o in parsed if self.is_structural(o)]
        values = [o for o in parsed if not self.is_structural(o)]  # (answered from self.groups now)
        key = "\n".join(structural)
        if key not in self.composed:
            self.composed[key] = loader.load_sweep_config(self.config, structural)
        cfg = self.composed[key].copy()
        with open_dict(cfg):
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        return cfg

    def is_structural(self, override: Any) -> bool:
        """Whether an override chooses a config group option (or adds, deletes, or sets Hydra's own keys)."""
        key = override.get_key_element().lstrip("+~")
        if override.is_add() or override.is_delete() or key.startswith("hydra") or "/" in key or "@" in key:
            return True
        if key not in self.groups:  # the config loader searches every config source: ask once per key
            self.groups[key] = bool(self.hydra_context.config_loader.get_group_options(key))
        return self.groups[key]

    def run_jobs(self, jobs: list[list[str]], first: int, search: dict | None = None) -> list[Outcome]:
        """Runs `jobs` (override lists), numbered from `first`; `search`: Optuna's study and each
        job's trial, for pruning inside packed programs."""
        solo: list[tuple[int, list[str]]] = []
        groups: dict[str, list[tuple[Member, dict[str, Any]]]] = {}
        for i, overrides in enumerate(jobs):
            num = first + i
            member = Member(num, self.job_dir(num), list(overrides), {})
            if search:
                member.trial = search["trials"][i]
            try:
                cfg = self.compose(overrides)
                values = flat(task_config(cfg))
            except Exception as e:  # a job whose config does not compose fails alone
                self.write_job_files(member, None)
                write_failed(member, f"{type(e).__name__}: {e}")
                continue
            if packable(values):
                self.write_job_files(member, cfg)
                groups.setdefault(group_key(values), []).append((member, values))
            else:
                solo.append((num, list(overrides)))
        launches = [[*o, f"hydra.sweep.subdir={num}"] for num, o in solo]
        launched: list[list[Member]] = [[Member(num, self.job_dir(num), o, {})] for num, o in solo]
        for members in groups.values():
            if len(members) == 1 and not search:  # (a search's lone trial still goes by a pack file: pruning)
                m = members[0][0]
                launches.append([*m.overrides, f"hydra.sweep.subdir={m.num}"])
                launched.append([m])
                continue
            for (m, _), own in zip(members, own_values([v for _, v in members])):
                m.values = own
            first_num = members[0][0].num
            pack = os.path.join(self.dir, "packs", f"{first_num}.json")
            extra = {k: v for k, v in (search or {}).items() if k != "trials"}
            write_pack(pack, [m for m, _ in members], extra)
            log.info("jobs %s: one program", [m.num for m, _ in members])
            launches.append(
                [
                    *members[0][0].overrides,
                    f"sweep.members={pack}",
                    f"hydra.sweep.subdir=packs/{first_num}",
                    "hydra.output_subdir=null",
                ]
            )
            launched.append([m for m, _ in members])
        if launches:
            returns = self.launcher.launch(launches, initial_job_idx=self.launched)
            for ret, members in zip(returns, launched):
                if ret.status.name == "FAILED":  # a crash outside dlexp's own handling: its jobs say so
                    error = f"{type(ret._return_value).__name__}: {ret._return_value}"
                    log.error("jobs %s: %s", [m.num for m in members], error)
                    for m in members:
                        if not os.path.exists(os.path.join(m.dir, "summary.json")):
                            write_failed(m, error)
            self.launched += len(launches)
        return [self.outcome(first + i) for i in range(len(jobs))]

    def write_job_files(self, member: Member, cfg: DictConfig | None) -> None:
        """A packed job's .hydra/ (Hydra writes a solo job's itself), so dlexp.sweep, dlexp.report
        and dlexp.evaluate read it as any job."""
        d = os.path.join(member.dir, ".hydra")
        os.makedirs(d, exist_ok=True)
        OmegaConf.save(OmegaConf.create(member.overrides), os.path.join(d, "overrides.yaml"))
        if cfg is not None:
            task = OmegaConf.to_container(cfg, resolve=False)
            assert isinstance(task, dict)
            task.pop("hydra", None)
            OmegaConf.save(OmegaConf.create(task), os.path.join(d, "config.yaml"))

    def outcome(self, num: int) -> Outcome:
        try:
            with open(os.path.join(self.job_dir(num), "summary.json")) as f:
                summary = json.load(f)
        except (OSError, ValueError):
            return Outcome(num, "missing", None, "no summary.json: the job was killed before it ended")
        value = (summary.get("objective") or {}).get("value")
        value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        return Outcome(num, str(summary.get("status")), value, summary.get("error"))


def grid(sweep: Sweep, overrides: list[Any]) -> list[Outcome]:
    """Every combination of the swept values, as Hydra's basic sweeper orders them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    for o in overrides:
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise ConfigError(
                f"{str(o.input_line).lstrip('+')} is a search space, not a list of values: set "
                "hydra.sweeper.n_trials=N to search it with Optuna, or give values (a,b,c / choice(...) / range(...))"
            )
    jobs = BasicSweeper.split_arguments(overrides, None)[0]
    return sweep.run_jobs([list(j) for j in jobs], 0)
