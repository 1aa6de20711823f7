"""MLflow: each run an MLflow run. The resolved config is its params, its scalars are metrics
with steps, its texts, plots and summary.json are artifacts.

Runs nest by their dirs: a sweep job's run is a child of the sweep's run (made by
`dlexp.callbacks.SweepReport` before any job starts, its id in `<sweep dir>/mlflow.json`),
a cross-validation fold's of its run's, a copy of `trainer.seeds` of its job's. A run's id
is kept in `<run dir>/mlflow.json`, so a resumed run goes on in the same MLflow run. Only
`MlflowClient` is used, never the fluent API's active run: runs side by side in threads or
processes stay apart.

A run is created with its writer, and its id recorded at once: the writers of its copies and
folds, made after it, find their parent there. (A packed sweep's program has no writers of
its own: its jobs are the runs.)
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from dlexp.config import LoggerConfig
from dlexp.errors import ConfigError
from dlexp.loggers.base import Comparison, Writer, is_number
from dlexp.loggers.names import RunPlace

log = logging.getLogger("dlexp")

RECORD = "mlflow.json"  # a run dir's: its run and its copies'; a sweep dir's: the sweep's run
STATUS = {"completed": "FINISHED", "pruned": "KILLED", "preempted": "KILLED"}  # any other: FAILED
MAX_KEY = 250  # MLflow's limits: key length, param value length, entries per log_batch
MAX_VALUE = 6000
MAX_PARAMS = 100
MAX_METRICS = 1000
VALID = (
    "null (a SQLite store under paths.runs), sqlite:///<path>.db, or the http(s):// address of a running "
    "`mlflow server` (mlflow server --host 127.0.0.1 --port 5000)"
)


def store_uri(cfg: LoggerConfig) -> str:
    """Where runs are kept: logger.tracking_uri, or a SQLite file in logger.store (paths.runs)."""
    return cfg.tracking_uri or "sqlite:///" + os.path.join(os.path.abspath(cfg.store), "mlflow.db")


def sqlite_file(uri: str) -> str | None:
    return os.path.abspath(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def connect(cfg: LoggerConfig) -> tuple[Any, str]:
    """A client and the experiment's id. A store that cannot be used is one ConfigError naming
    logger.tracking_uri, raised before anything trains (a server is asked once, not retried for minutes)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(
            "logger.mlflow=true needs the mlflow package: pip install 'dlexp[mlflow]' "
            "(in a clone: uv sync --extra mlflow)"
        ) from None
    uri = store_uri(cfg)
    where = f"logger.tracking_uri={cfg.tracking_uri}" if cfg.tracking_uri else f"logger.tracking_uri=null ({uri})"
    try:
        from mlflow import MlflowClient

        if uri.startswith(("http://", "https://")):
            import requests

            try:
                requests.get(uri, timeout=10)
            except requests.RequestException as e:
                answer = f"no MLflow server answers there ({type(e).__name__})"
                raise ConfigError(f"{where}: {answer}. Valid: {VALID}.") from None
        with store_lock(uri), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The ``noload`` loader strategy")  # MLflow's SQL store on SQLAlchemy 2.1
            client = MlflowClient(tracking_uri=uri)
            return client, experiment_id(client, cfg.experiment_name, artifact_root(uri))
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{where}: MLflow cannot use it ({reason(e)}). Valid: {VALID}.") from None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Jobs starting together must not both create a new SQLite store's tables."""
    path = sqlite_file(uri)
    if path is None:
        yield
        return
    import fcntl

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def artifact_root(uri: str) -> str | None:
    """A SQLite store keeps artifacts beside its file (MLflow's default would be ./mlruns of
    whatever dir a run starts in); a server decides for itself."""
    path = sqlite_file(uri)
    return Path(os.path.dirname(path), "mlartifacts").as_uri() if path else None


def experiment_id(client: Any, name: str, artifacts: str | None) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # made meanwhile by a run beside this one
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise ConfigError(
            f"logger.experiment_name={name}: that MLflow experiment is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or choose another name"
        )
    return exp.experiment_id


def reason(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 300 else text[:299] + "…"


def read_record(folder: str, uri: str, experiment: str) -> dict[str, Any]:
    """The runs recorded in a run or sweep dir, if they are in this store and experiment."""
    try:
        with open(os.path.join(folder, RECORD)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    same = record.get("tracking_uri") == uri and record.get("experiment_id") == experiment
    return record if same else {}


def write_record(folder: str, record: dict[str, Any]) -> None:
    from dlexp.rundir import write_json

    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, RECORD), record)


def active(client: Any, run_id: str | None) -> bool:
    """Whether a recorded run can go on (it may have been deleted since)."""
    if not run_id:
        return False
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:
        return False


def param_value(v: Any) -> str:
    """A config value as it reads in YAML (null, true, [16, 16]), within MLflow's length limit."""
    text = v if isinstance(v, str) else v.name if isinstance(v, Enum) else json.dumps(v, default=str)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def git_tags(commit: str | None, dirty: bool | None) -> dict[str, str]:
    if not commit:
        return {}
    return {"dlexp.git_commit": commit, "mlflow.source.git.commit": commit, "dlexp.git_dirty": str(bool(dirty))}


def run_git(run_dir: str) -> dict[str, str]:
    """The commit run.json recorded (run() writes it before its writers are made)."""
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            git = json.load(f).get("git") or {}
    except (OSError, ValueError):
        return {}
    return git_tags(git.get("commit"), git.get("dirty"))


def best_checkpoint(run_dir: str) -> str | None:
    """Every checkpoint carries the best state: the last one's `best` item is it (dlexp/checkpoint.py)."""
    from dlexp.checkpoint import checkpoint_dir, saved_steps

    steps = saved_steps(run_dir)
    if not steps:
        return None
    step_dir = os.path.join(checkpoint_dir(run_dir), str(steps[-1]))
    return os.path.join(step_dir, "best") if os.path.isdir(os.path.join(step_dir, "best")) else step_dir


def now_ms() -> int:
    return int(time.time() * 1000)


class MLflowWriter(Writer):
    """One run's MLflow run; `label`: a copy of trainer.seeds / trainer.copies, nested under its job's run."""

    def __init__(self, cfg: LoggerConfig, place: RunPlace, label: str | None = None):
        self.client, self.experiment = connect(cfg)
        self.uri = store_uri(cfg)
        self.place, self.label = place, label
        self.dir = os.path.abspath(place.dir)
        self.run_id: str | None = None
        self.params_logged: dict[str, str] = {}
        self.metrics_logged: set[str] = set()
        self.last_step = 0
        self.broken = False
        self.call(lambda run_id: None)  # the run now: copies and folds made later nest under it

    # ------------------------------------------------------------------ the run
    def ensure(self) -> str:
        """The run's id, creating (or, resumed, reopening) the run on first use."""
        if self.run_id is None:
            self.run_id = self.start()
        return self.run_id

    def start(self) -> str:
        parent = self.parent()
        record = read_record(self.dir, self.uri, self.experiment)
        earlier = (record.get("copies") or {}).get(self.label) if self.label else record.get("run_id")
        if active(self.client, earlier):
            assert earlier is not None
            self.client.update_run(earlier, status="RUNNING")
            self.params_logged = dict(self.client.get_run(earlier).data.params)
            return earlier
        tags = {"dlexp.run_dir": self.dir, **run_git(self.dir)}
        if parent:
            tags["mlflow.parentRunId"] = parent
        if self.label:
            tags["dlexp.copy"] = self.label
        run_id = self.client.create_run(self.experiment, tags=tags, run_name=self.name(parent)).info.run_id
        record = record or {"tracking_uri": self.uri, "experiment_id": self.experiment}
        if self.label:
            record.setdefault("copies", {})[self.label] = run_id
        else:
            record["run_id"] = run_id
        write_record(self.dir, record)
        return run_id

    def parent(self) -> str | None:
        """A copy's job run; else the run of the dir above: a sweep's, or a cross-validated run's for a fold."""
        above = self.dir if self.label else os.path.dirname(self.dir)
        return read_record(above, self.uri, self.experiment).get("run_id")

    def name(self, parent: str | None) -> str:
        if self.label:
            return self.label
        if parent and not self.place.sweep_dir:  # a fold: its place in its run
            return os.path.basename(self.dir)
        return self.place.name or os.path.basename(self.dir)

    def call(self, fn: Callable[[str], None]) -> None:
        """Logs through `fn`; a store that fails mid-run (after MLflow's own retries) is warned about
        once and left alone, so training goes on."""
        if self.broken:
            return
        try:
            fn(self.ensure())
        except Exception as e:
            self.broken = True
            log.warning("MLflow at %s failed: %s; this run logs nothing more there", self.uri, reason(e))

    # ------------------------------------------------------------------ the calls
    def params(self, config: dict[str, Any]) -> None:
        self.call(lambda run_id: self.log_params(run_id, config, note_changes=True))

    def log_params(self, run_id: str, values: dict[str, Any], note_changes: bool = False) -> None:
        """Params not logged yet. MLflow refuses to change one: a resumed run keeps its first values,
        and a config value that changed on resuming is tag `resumed.<key>`."""
        from mlflow.entities import Param, RunTag

        pairs = {k[:MAX_KEY]: param_value(v) for k, v in values.items()}
        new = [Param(k, v) for k, v in pairs.items() if k not in self.params_logged]
        changed = [RunTag(f"resumed.{k}"[:MAX_KEY], v) for k, v in pairs.items() if self.params_logged.get(k, v) != v]
        changed = changed if note_changes else []
        for i in range(0, max(len(new), len(changed)), MAX_PARAMS):
            self.client.log_batch(run_id, params=new[i : i + MAX_PARAMS], tags=changed[i : i + MAX_PARAMS])
        self.params_logged.update((p.key, p.value) for p in new)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        numbers = {k: float(v) for k, v in values.items() if is_number(v)}
        if numbers:
            self.call(lambda run_id: self.log_metrics(run_id, step, numbers))

    def log_metrics(self, run_id: str, step: int, values: dict[str, float]) -> None:
        """Non-finite values too: MLflow keeps NaN and stores ±inf as the largest floats."""
        from mlflow.entities import Metric

        t = now_ms()
        metrics = [Metric(k[:MAX_KEY], v, t, int(step)) for k, v in values.items()]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS])
        self.metrics_logged.update(values)
        self.last_step = max(self.last_step, int(step))

    def text(self, tag: str, text: str, step: int = 0) -> None:
        path = f"text/{tag}.txt" if step == 0 else f"text/{tag}/step_{step:07d}.txt"
        self.call(lambda run_id: self.client.log_text(run_id, text, path))

    def image(self, tag: str, image_hwc: Any, step: int) -> None:
        import numpy as np
        from PIL import Image

        a = np.asarray(image_hwc)
        if a.dtype != np.uint8:  # floats in [0, 1]
            a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        picture = Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)
        self.call(lambda run_id: self.client.log_image(run_id, picture, artifact_file=f"{tag}/step_{step:07d}.png"))

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float], comparison: Comparison) -> None:
        """The compared values not in the config (model=mlp: a group's choice) become params; the
        swept keys and the objective's column are tags; results not logged as scalars are logged."""

        def log_them(run_id: str) -> None:
            self.log_params(run_id, hparams)
            tags = {"dlexp.swept": ",".join(comparison.swept)} if comparison.swept else {}
            if comparison.metrics:
                tags["dlexp.objective"] = comparison.metrics[0]
            if comparison.group:
                tags["dlexp.group"] = comparison.group
            for k, v in tags.items():
                self.client.set_tag(run_id, k, v)
            rest = {k: float(v) for k, v in metrics.items() if is_number(v) and k not in self.metrics_logged}
            if rest:
                self.log_metrics(run_id, self.last_step, rest)

        self.call(log_them)

    def artifacts(self, paths: list[str]) -> None:
        """Files at the top of the run's artifacts; the job's best checkpoint as tag dlexp.best_checkpoint."""

        def log_them(run_id: str) -> None:
            for p in paths:
                if os.path.isfile(p):
                    self.client.log_artifact(run_id, p)
            best = best_checkpoint(self.dir) if self.label is None else None
            if best:
                self.client.set_tag(run_id, "dlexp.best_checkpoint", best)

        self.call(log_them)

    def close(self, status: str = "completed") -> None:
        """Ends the run FINISHED, FAILED or KILLED (preempted, pruned); dlexp's own status is tag
        dlexp.status."""
        if self.run_id is None or self.broken:
            return
        try:
            self.client.set_tag(self.run_id, "dlexp.status", status)
            self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
        except Exception as e:
            log.warning("MLflow at %s failed ending run %s: %s", self.uri, self.run_id, reason(e))


# ---------------------------------------------------------------------- a sweep's parent run
def sweep_logger(config: Any) -> LoggerConfig:
    """The MLflow part of a sweep's composed config (a Hydra callback gets it untyped)."""
    node = config.logger
    return LoggerConfig(
        mlflow=True, tracking_uri=node.tracking_uri, experiment_name=node.experiment_name, store=str(node.store)
    )


def start_sweep(cfg: LoggerConfig, sweep_dir: str, overrides: list[str]) -> None:
    """The sweep's parent run, made once before any job starts (jobs may start together), its id
    in `<sweep dir>/mlflow.json`. A sweep that goes on (a study continued) reopens its run."""
    from dlexp.rundir import git_state

    client, experiment = connect(cfg)
    uri, folder = store_uri(cfg), os.path.abspath(sweep_dir)
    earlier = read_record(folder, uri, experiment).get("run_id")
    if active(client, earlier):
        client.update_run(earlier, status="RUNNING")
        return
    git = git_state(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tags = {"dlexp.sweep_dir": folder, "dlexp.overrides": " ".join(overrides)[:MAX_VALUE], **git_tags(**git)}
    rel = os.path.relpath(folder)
    run = client.create_run(experiment, tags=tags, run_name=rel if not rel.startswith("..") else folder)
    write_record(folder, {"tracking_uri": uri, "experiment_id": experiment, "run_id": run.info.run_id})


def end_sweep(cfg: LoggerConfig, sweep_dir: str, failed: bool) -> None:
    """Logs the results table and each job's summary.json (a packed job's is written after its
    run has ended), then ends the sweep's run. A store failing here is a warning: the sweep is done."""
    folder = os.path.abspath(sweep_dir)
    try:
        from mlflow import MlflowClient

        uri = store_uri(cfg)
        with open(os.path.join(folder, RECORD)) as f:
            record = json.load(f)
        client = MlflowClient(tracking_uri=uri)
        for name in ("results.csv", "results.parquet"):
            if os.path.isfile(os.path.join(folder, name)):
                client.log_artifact(record["run_id"], os.path.join(folder, name))
        for job in sorted(os.listdir(folder)):
            job_run = read_record(os.path.join(folder, job), uri, record["experiment_id"]).get("run_id")
            summary = os.path.join(folder, job, "summary.json")
            if job_run and os.path.isfile(summary):
                client.log_artifact(job_run, summary)
        client.set_terminated(record["run_id"], "FAILED" if failed else "FINISHED")
    except Exception as e:
        log.warning("MLflow: could not end the sweep's run (%s)", reason(e))
