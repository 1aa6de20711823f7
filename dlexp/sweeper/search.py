"""Optuna searches through ask-and-tell: a batch of trials at a time, each batch one sweep step.

The sweeper asks the study for `batch` trials, runs them as jobs (packed into one program
where they can be) and tells the study each job's objective, a failure, or a pruning. The
study lives in any SQLAlchemy storage (default: SQLite in the sweep dir), so several sweeper
processes can share one (PostgreSQL). Search spaces use Hydra's sweep syntax:

  interval(a, b)             a float in [a, b]       tag(log, interval(a, b)): on a log scale
  tag(int, interval(a, b))   an integer in [a, b]
  choice(x, y, ...) / a,b,c  one of the values       range(a, b): an integer in [a, b)
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import OmegaConf

from dlexp.errors import ConfigError
from dlexp.hooks.base import Hook

log = logging.getLogger("dlexp")


def distribution(override: Any) -> Any:
    """The Optuna distribution of a Hydra sweep override."""
    import optuna.distributions as d

    value = override.value()
    if override.is_interval_sweep():
        tags = set(value.tags)
        if "int" in tags:
            return d.IntDistribution(int(value.start), int(value.end), log="log" in tags)
        return d.FloatDistribution(float(value.start), float(value.end), log="log" in tags)
    choices = list(override.sweep_iterator()) if override.is_range_sweep() else list(value.list)
    return d.CategoricalDistribution([c if isinstance(c, (int, float, str, bool)) else str(c) for c in choices])


def make_sampler(cfg: Any) -> Any:
    import optuna

    name = str(cfg.name)
    if name == "tpe":  # constant_liar: the trials of one batch do not all land on the same point
        return optuna.samplers.TPESampler(
            seed=cfg.seed, n_startup_trials=int(cfg.n_startup_trials), constant_liar=True, multivariate=True
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=cfg.seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=cfg.seed, n_startup_trials=int(cfg.n_startup_trials))
    raise ConfigError(f"hydra.sweeper.sampler.name={name!r} is not a sampler; valid: tpe, random, gp")


def make_pruner(cfg: Any) -> Any:
    import optuna

    if cfg.name is None:
        return optuna.pruners.NopPruner()
    if cfg.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(cfg.n_startup_trials), n_warmup_steps=cfg.n_warmup_steps
        )
    raise ConfigError(f"hydra.sweeper.pruner.name={cfg.name!r} is not a pruner; valid: median, null")


def default_storage(sweep_dir: str) -> str:
    return f"sqlite:///{os.path.join(sweep_dir, 'optuna.db')}"


def open_study(create: Any, tries: int = 5) -> Any:
    """create() again after a clash: sweepers that start together on a new database race to
    create its tables (a unique violation in PostgreSQL's catalog); the loser then finds them."""
    import random
    import time

    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    for attempt in range(tries):
        try:
            return create()
        except (ArgumentError, NoSuchModuleError) as e:  # not a URL SQLAlchemy can open
            raise ConfigError(
                f"hydra.sweeper.storage cannot be opened ({e}); give an SQLAlchemy URL such as "
                "sqlite:///study.db or postgresql+psycopg2://user:password@host/db (null: SQLite in the sweep dir)"
            ) from None
        except SQLAlchemyError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2 + random.random())


def optimize(sweep: Any, overrides: list[Any], settings: Any) -> list[Any]:
    """Runs settings.n_trials trials, settings.batch at a time; returns their outcomes."""
    import optuna

    if str(settings.direction) not in ("minimize", "maximize"):
        raise ConfigError(f"hydra.sweeper.direction={settings.direction!r}; valid: minimize, maximize")
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    space = {o.get_key_element(): distribution(o) for o in overrides if o.is_sweep_override()}
    storage = str(settings.storage or default_storage(sweep.dir))
    study = open_study(
        lambda: optuna.create_study(
            study_name=settings.study_name,
            storage=storage,
            sampler=make_sampler(settings.sampler),
            pruner=make_pruner(settings.pruner),
            direction="maximize" if str(settings.direction) == "maximize" else "minimize",
            load_if_exists=True,
        )
    )
    outcomes: list[Any] = []
    n, batch = int(settings.n_trials), max(int(settings.batch), 1)
    while len(outcomes) < n:
        trials = [study.ask(space) for _ in range(min(batch, n - len(outcomes)))]
        jobs = [[*fixed, *(f"{k}={v}" for k, v in t.params.items())] for t in trials]
        search = {
            "storage": storage,
            "study_name": study.study_name,
            "pruner": OmegaConf.to_container(settings.pruner),  # the job decides with the same pruner
            "trials": [t._trial_id for t in trials],
        }
        done = sweep.run_jobs(jobs, len(outcomes), search=search)
        for t, o in zip(trials, done):
            if o.status == "pruned":
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            elif o.status == "completed" and o.value is not None:
                study.tell(t, o.value)
            else:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
        outcomes += done
    try:
        best = study.best_trial
        log.info("best trial %d: %s = %s", best.number, best.params, best.value)
    except ValueError:
        log.info("no trial completed")
    return outcomes


class OptunaPruning(Hook):
    """Reports each copy's objective to its trial at every evaluation; a trial the pruner stops
    ends its copy with status "pruned" (the others go on)."""

    copies_ok = True

    def __init__(self, storage: str, study_name: str, pruner: dict, trials: list[int]):
        import optuna

        study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(OmegaConf.create(pruner)))
        self.trials = [optuna.trial.Trial(study, t) for t in trials]

    def on_eval(self, ctx: Any, loop: Any, improved: list[bool]) -> None:
        import math

        metric = ctx.objective[0]
        for c, trial in zip(loop.copies, self.trials):
            value = c.value(metric) if c.status == "running" else None
            if value is None or not math.isfinite(value):
                continue
            trial.report(value, loop.step)
            if trial.should_prune():
                c.status = "pruned"
                log.info("%s pruned at step %d (%s = %.5g)", c.label, loop.step, metric, value)


def pruning_hook(storage: str, study_name: str, pruner: dict, trials: list[int]) -> Hook:
    return OptunaPruning(storage, study_name, pruner, trials)
