"""Config schemas and the checks that turn a bad config into one clear message.

The groups dlexp owns (trainer, schedule, logger, paths, objective) are dataclasses
registered in Hydra's ConfigStore as `train_schema`: Hydra then rejects a misspelt
key or a wrong type itself and names the key. The groups that point at code through
`_target_` (dataset, model, optimizer) accept whatever the target accepts, so they
are checked against the target's signature instead (`check_call`).
"""

from __future__ import annotations

import collections.abc
import enum
import importlib
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from dlexp.errors import ConfigError


class Parallel(enum.StrEnum):
    auto = "auto"  # mesh over every local device when that pays, else single
    single = "single"  # one device
    mesh = "mesh"  # jax.jit over a ("data",) mesh, batch sharded, state replicated
    pmap = "pmap"  # the classic per-device replicated path


class CpuKernels(enum.StrEnum):
    xla = "xla"  # XLA's own choice of kernels
    ynn_dots = "ynn_dots"  # only matrix products through YNNPACK (dlexp/loop/xla_cpu.py)


class Schedule(enum.StrEnum):
    constant = "constant"
    cosine = "cosine"
    warmup_cosine = "warmup_cosine"


class Task(enum.StrEnum):
    auto = "auto"  # the data set's own task (its label decides when it has none)
    classification = "classification"
    regression = "regression"


class Mode(enum.StrEnum):
    min = "min"
    max = "max"


class NanPolicy(enum.StrEnum):
    stop = "stop"  # raise naming the step (copies: mark the copy failed); the last good checkpoint stays
    skip = "skip"  # skip the update, count the skips


class Precision(enum.StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"  # compute in bfloat16, parameters and optimizer state in float32


@dataclass
class CheckpointConfig:
    every_steps: int | None = None  # save every N steps (null: off)
    every_epochs: int | None = 1  # save every N epochs (null: off)
    min_interval_s: float | None = 30.0  # at most one cadence save per this many seconds (the end, a stop, always)
    keep: int = 2  # the last k checkpoints kept (the best is kept as well)
    async_save: bool = True  # write in the background while training goes on
    enabled: bool = True


@dataclass
class EarlyStoppingConfig:
    patience: int | None = None  # evaluations without improvement before stopping (null: off)
    min_delta: float = 0.0  # an improvement smaller than this does not count


@dataclass
class CVConfig:
    folds: int | None = None  # K-fold cross-validation: train K models (null: off)


@dataclass
class DistributedConfig:
    coordinator: str | None = None  # host:port of process 0; null: from SLURM / submitit, or single-process
    num_processes: int | None = None
    process_id: int | None = None


@dataclass
class TrainerConfig:
    epochs: int = 30
    steps: int | None = None  # when set, train this many steps instead of epochs
    batch_size: int = 64
    eval_batch_size: int = 1024
    eval_every: int | None = None  # steps between val evaluations; None: once per epoch
    log_every: int = 20  # steps between train-metric logs (the only host syncs)
    steps_per_call: Any = "auto"  # train steps fused into one compiled call (lax.scan): auto or an int >= 1
    parallel: Parallel = Parallel.auto
    cpu_kernels: CpuKernels = CpuKernels.xla  # which ops XLA CPU hands to YNNPACK (ignored elsewhere)
    progress: bool = True  # a progress bar on stderr
    precision: Precision = Precision.float32
    nan_policy: NanPolicy = NanPolicy.stop
    seeds: Any | None = None  # a list of seeds, or a count: that many copies in one vmapped program
    copies: Any | None = None  # a list of override sets of vectorizable keys: one copy each (dlexp/copies.py)
    resume: str | None = None  # a run dir to continue from (the run's own dir is resumed automatically)
    compile_cache: bool = True  # JAX's persistent compilation cache under paths.cache
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # Parts of the rows each read by one process (docs/multihost.md); null: one per device when
    # several processes run, else 1 (every process reads everything)
    data_shards: int | None = None


@dataclass
class ScheduleConfig:
    name: Schedule = Schedule.warmup_cosine
    warmup_steps: float = 0.05  # < 1: a fraction of all steps; >= 1: a step count
    final_lr_factor: float = 0.0  # cosine ends at lr * final_lr_factor


@dataclass
class LoggerConfig:
    # Each logger option turns its own on, so they combine: logger=[tensorboard,mlflow].
    tensorboard: bool = False  # event files under <run>/tb (a sweep job: <sweep>/tb/<its name>)
    jsonl: bool = False  # <run>/metrics.jsonl
    mlflow: bool = False  # an MLflow run: params, metrics with steps, artifacts
    tracking_uri: str | None = None  # MLflow's store or server (null: sqlite under paths.runs)
    experiment_name: str = "dlexp"  # the MLflow experiment runs are filed under
    store: str = "${paths.runs}"  # the local MLflow store's folder (tracking_uri null): mlflow.db, mlartifacts/
    console: bool = True  # the summary table at the end
    histograms_every: int | None = None  # steps between parameter / gradient histograms (null: off)
    embeddings: bool = False  # penultimate-layer features of val samples for the projector
    embedding_samples: int = 500
    profile_steps: int | None = None  # trace this many steps with the JAX profiler (debug=profile)
    plots: bool = True  # images into TensorBoard: confusion matrix, ROC, predictions, GAN samples, reconstructions


@dataclass
class PathsConfig:
    runs: str = "runs"  # single runs go to <runs>/<date>/<time>
    multirun: str = "multirun"
    cache: str = "${oc.env:DLEXP_CACHE,${oc.env:HOME,.}/.cache/dlexp}"  # built-in data sets


@dataclass
class ObjectiveConfig:
    metric: str = "val/loss"  # what sweepers optimize and the best checkpoint is chosen by
    mode: Mode = Mode.min


@dataclass
class LossConfig:
    l1: float = 0.0  # penalty on the sum of |params| (kernels only)
    l2: float = 0.0  # penalty on the sum of params^2 (kernels only)
    label_smoothing: float = 0.0  # classification only


@dataclass
class QualityConfig:
    # the classifier that measures a GAN's or VAE's samples (dlexp/quality): auto trains one on
    # the data's labels; a run dir reuses a dlexp classification run; off measures nothing
    judge: str = "auto"
    judge_steps: int = 500  # its training steps (auto)


@dataclass
class SweepConfig:
    pack: bool | None = (
        None  # -m: train jobs that differ only in vectorizable keys as one program (null: where it pays)
    )
    memory_gb: float | None = None  # what a packed program may use (null: the device's memory; CPU: half the RAM)
    members: str | None = None  # set by the sweeper: the pack file naming the jobs this program trains


@dataclass
class TrainConfig:
    """A run's whole config: the one source of defaults (conf/ YAML picks group options and presets)."""

    dataset: dict[str, Any] = field(default_factory=dict)  # `_target_` plus its keyword arguments
    model: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    callbacks: dict[str, Any] = field(default_factory=dict)  # hooks by name: `_target_` + arguments, or null (off)
    task: Task = Task.auto
    seed: int = 0
    data_seed: int | None = None  # the data split's seed (null: seed); vectorized seeds share it
    name: str | None = None  # appended to the run dir name


def typed(cfg: Any) -> TrainConfig:
    """The composed config as typed objects, once, at the entry point; a value left `???`
    is named."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(cfg, TrainConfig):
        return cfg
    try:
        out = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key} must be set, e.g. {e.full_key}=...") from None
    if not isinstance(out, TrainConfig):  # composed without the schema (a saved run's config.yaml)
        out = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), cfg))
    assert isinstance(out, TrainConfig)
    return out


def seed_list(seeds: Any, base: int) -> list[int]:
    """`trainer.seeds`: a count n (seeds base .. base+n-1) or an explicit list."""
    if isinstance(seeds, bool):
        raise ConfigError(f"trainer.seeds={seeds!r} must be a count (4) or a list of seeds ([0,1,2,3])")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"trainer.seeds={seeds} must be at least 1 (or a list of seeds)")
        return [base + i for i in range(seeds)]
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(
            f"trainer.seeds={seeds!r} must be a count (4) or a list of integer seeds ([0,1,2,3])"
        ) from None
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"trainer.seeds={out} must be a non-empty list of distinct seeds")
    return out


def config_dir() -> str:
    """The shipped configs: conf/ inside the installed package (the wheel carries it), else the
    repository's top-level conf/ (a clone, an editable install)."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    packaged = os.path.join(here, "conf")
    return packaged if os.path.isdir(packaged) else os.path.join(os.path.dirname(here), "conf")


def register_configs() -> None:
    """Make `train_schema` known to Hydra (conf/train.yaml lists it first) and the
    `suffix` resolver that appends `_<name>` to run dir names when a name is set."""
    import warnings

    # conf/train.yaml searches a conf/ where dlexp runs; most working directories have none.
    warnings.filterwarnings("ignore", message=r"provider=hydra\.searchpath in main, path=conf is not available")
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    if not OmegaConf.has_resolver("suffix"):
        OmegaConf.register_new_resolver("suffix", lambda name: f"_{name}" if name else "")
    if not OmegaConf.has_resolver("optuna_direction"):  # objective.mode -> Optuna's direction
        OmegaConf.register_new_resolver("optuna_direction", lambda mode: f"{mode}imize")


# --------------------------------------------------------------------------- targets


def import_target(path: str, key: str) -> Any:
    """Imports `pkg.module.Name`; a failure names the config key and the path."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{key}._target_={path!r} is not a dotted import path like 'my_pkg.MyNet'")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{key}._target_={path!r}: cannot import module {module_name!r} ({e})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        public = sorted(n for n in dir(module) if not n.startswith("_"))
        raise ConfigError(
            f"{key}._target_={path!r}: module {module_name!r} has no {attr!r}; it has: {', '.join(public)}"
        ) from None


_SIMPLE_TYPES = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}


def _check_type(value: Any, annotation: Any, key: str) -> None:
    """Checks the plain annotations (int, float, bool, str, their Optionals and sequences)."""
    if annotation is inspect.Parameter.empty or value is None:
        return
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        errors = []
        for a in args:
            try:
                _check_type(value, a, key)
                return
            except ConfigError as e:
                errors.append(e)
        if errors and len(errors) == len(args):
            raise errors[0]
        return
    if origin in (tuple, list, collections.abc.Sequence) or annotation in (tuple, list):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{key}={value!r} should be a list, like [64, 32]")
        return
    accepted = _SIMPLE_TYPES.get(annotation)
    if accepted is None:
        return
    ok = isinstance(value, accepted) and not (annotation is not bool and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{key}={value!r} should be of type {annotation.__name__}")


def parameters(fn: Any) -> dict[str, inspect.Parameter]:
    """The named parameters of a function or of a class's constructor (without self)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    return {n: p for n, p in sig.parameters.items() if n != "self"}


def check_call(fn: Any, kwargs: dict, key: str, injected: tuple[str, ...] = ()) -> None:
    """Rejects config keys that `fn` does not take, listing the ones it does.

    `injected` names the arguments dlexp supplies itself (rngs, in_shape, ...): they
    are valid parameters but not settable from the config.
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    params = parameters(fn)
    if not params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = sorted(n for n, p in params.items() if n not in injected and p.kind is not inspect.Parameter.VAR_POSITIONAL)
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    for name, value in kwargs.items():
        if name not in params or name in injected:
            raise ConfigError(
                f"{key}.{name} is not a parameter of {_qualname(fn)}{_did_you_mean(name, valid)}; "
                f"valid keys: {', '.join(valid)}"
            )
        _check_type(value, hints.get(name, params[name].annotation), f"{key}.{name}")
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and n not in kwargs
        and n not in injected
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if missing:
        raise ConfigError(f"{key}: {_qualname(fn)} needs {', '.join(f'{key}.{m}' for m in missing)}")


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def target_kwargs(node: Any, key: str) -> tuple[Any, dict]:
    """Splits a `_target_` config node (a dict, or a DictConfig) into (imported callable, plain kwargs)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(node, DictConfig):
        missing = [f"{key}.{k}" for k in node if OmegaConf.is_missing(node, k)]
        if missing:
            raise ConfigError(f"{', '.join(missing)} must be set, e.g. {missing[0]}=...")
        try:
            node = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
        except MissingMandatoryValue as e:
            raise ConfigError(f"{key}: {e}") from None
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(f"{key} needs a `_target_` (choose a {key} group option, e.g. {key}=...)")
    data = dict(node)
    path = data.pop("_target_")
    data.pop("_partial_", None)
    return import_target(path, key), data


def call_target(node: Any, key: str, given: dict[str, Any]) -> Any:
    """Calls the `_target_` of a config node with its keys, checked against the target's signature,
    plus those of `given` (what dlexp supplies: rngs, seed, run_dir, ...) that the target names."""
    fn, kwargs = target_kwargs(node, key)
    check_call(fn, kwargs, key, injected=tuple(given))
    accepted = parameters(fn)
    return fn(**kwargs, **{k: v for k, v in given.items() if k in accepted})


# --------------------------------------------------------------------------- overrides


def check_overrides(args: list[str], groups: frozenset[str] | set[str] = frozenset()) -> None:
    """Names a misspelt key of a schema group before Hydra composes anything.

    Hydra would reject `trainer.epoch=3` too, but suggests `+trainer.epoch=3`, which
    the schema then rejects again; this says which keys exist and which one was meant.
    """
    import dataclasses

    top = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    schemas = {
        f.name: f.default_factory
        for f in dataclasses.fields(TrainConfig)
        if dataclasses.is_dataclass(f.default_factory)
    }
    for arg in args:
        if arg.startswith(("-", "+", "~")) or "=" not in arg:
            continue
        key = arg.split("=", 1)[0]
        parts = key.split(".")
        if parts[0] in ("hydra", "experiment", "debug") or "/" in parts[0] or "@" in key:
            continue
        if len(parts) == 1:
            if key not in top and key not in groups:
                raise ConfigError(_unknown(key, key, sorted(set(top) | set(groups)), "top-level key or config group"))
            continue  # a group choice (model=cnn) or a top-level value: Hydra checks its value
        group = parts[0]
        if group not in schemas:
            if group not in top:
                valid = sorted(top) + ["hydra"]
                raise ConfigError(_unknown(key, group, valid, "top-level key"))
            continue
        fields = {f.name for f in dataclasses.fields(schemas[group])}
        if len(parts) == 2 and parts[1] not in fields:
            raise ConfigError(_unknown(key, parts[1], sorted(fields), f"key of {group}"))


def _did_you_mean(name: str, valid: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(key: str, name: str, valid: list[str], what: str) -> str:
    return f"{key}: {name!r} is not a {what}{_did_you_mean(name, valid)}; valid: {', '.join(valid)}"


TARGET_GROUPS = ("dataset", "model", "optimizer")  # groups that point at code: their keys are the target's


def open_target_overrides(args: list[str]) -> list[str]:
    """Command-line overrides as Hydra should apply them to the `_target_` groups.

    Their keys are whatever the target takes, so `dataset.missing=median` sets a key the
    group's YAML need not list (Hydra's `++`: add or override); `check_call` then names a
    misspelt one. `dataset._target_=my.loader` alone means a loader of one's own: it starts
    from the empty option (`dataset=custom`), not from the default data set's keys.
    """
    out, chosen = [], {a.split("=", 1)[0] for a in args if "=" in a and "." not in a.split("=", 1)[0]}
    for arg in args:
        key = arg.split("=", 1)[0]
        group = key.split(".", 1)[0]
        if group in TARGET_GROUPS and "." in key and not arg.startswith(("+", "~")):
            if key == f"{group}._target_" and group not in chosen:
                out.append(f"{group}=custom")
                chosen.add(group)
            arg = f"++{arg}"
        out.append(arg)
    return out
