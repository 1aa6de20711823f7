"""The built-in hooks as `conf/callbacks/` names them: one factory each, reading the run's config.

A factory returns its hook, several, or None where the config turns it off (no
`trainer.early_stopping.patience`, `logger.plots=false`, ...), so the callbacks group lists
every built-in while the familiar keys keep deciding which ones act.
"""

from __future__ import annotations

from dlexp.config import TrainConfig
from dlexp.hooks.base import Hook


def preemption() -> Hook:
    """SIGTERM / SIGINT: stop after this call, save, status "preempted"."""
    from dlexp.hooks.stopping import Preemption

    return Preemption()


def profiler(cfg: TrainConfig, run_dir: str) -> Hook | None:
    """A JAX profiler trace of logger.profile_steps steps (debug=profile)."""
    from dlexp.hooks.profile import ProfileHook
    from dlexp.loggers.names import event_dir

    steps = cfg.logger.profile_steps
    return ProfileHook(event_dir(run_dir), steps) if steps else None


def confusion() -> Hook:
    """The test confusion matrix of the best state, into summary.json (classification)."""
    from dlexp.hooks.inspection import TestConfusion

    return TestConfusion()


def layer_stats(cfg: TrainConfig) -> Hook | None:
    """Histograms of params and grads and update ratios every logger.histograms_every steps."""
    from dlexp import optim
    from dlexp.hooks.inspection import LayerStats

    if not cfg.logger.histograms_every:
        return None
    make_tx = lambda total: optim.make_optimizer(cfg.optimizer, cfg.schedule, total)[0]  # noqa: E731
    return LayerStats(cfg.logger.histograms_every, make_tx, seed=cfg.seed)


def embeddings(cfg: TrainConfig) -> Hook | None:
    """Penultimate-layer features of val samples for the projector (logger.embeddings)."""
    from dlexp.hooks.inspection import Embeddings

    return Embeddings(cfg.logger.embedding_samples, seed=cfg.seed) if cfg.logger.embeddings else None


def plots(
    cfg: TrainConfig, samples: int = 16, windows: int = 4, generated: int = 64, reconstructions: int = 8
) -> list[Hook] | None:
    """Figures into TensorBoard or MLflow, each for the task it fits (logger.plots)."""
    from dlexp.hooks.plots import ClassificationPlots, GANSamples, Reconstructions, RegressionPlots

    if not ((cfg.logger.tensorboard or cfg.logger.mlflow) and cfg.logger.plots):
        return None
    return [
        ClassificationPlots(samples),
        RegressionPlots(windows),
        GANSamples(cfg.seed, generated),
        Reconstructions(reconstructions),
    ]


def early_stopping(cfg: TrainConfig) -> Hook | None:
    """Stop each copy after trainer.early_stopping.patience evaluations without improvement."""
    from dlexp.hooks.stopping import EarlyStopping

    es = cfg.trainer.early_stopping
    return EarlyStopping(es.patience, es.min_delta) if es.patience is not None else None


def checkpoint(cfg: TrainConfig, run_dir: str, copy_dirs: list[str] | None = None) -> Hook | None:
    """Orbax checkpoints at trainer.checkpoint's cadence; resumes this dir's or trainer.resume's.
    A packed sweep (`copy_dirs`: each copy's job dir) keeps each job's in its own dir."""
    from dlexp.hooks.checkpoint import CheckpointHook, MemberCheckpoints
    from dlexp.resume import resume_source

    if copy_dirs:
        return MemberCheckpoints(copy_dirs, cfg.trainer.checkpoint) if cfg.trainer.checkpoint.enabled else None
    source = resume_source(cfg, run_dir)  # checks trainer.resume even when checkpoints are off
    if not cfg.trainer.checkpoint.enabled:
        return None
    return CheckpointHook(run_dir, cfg.trainer.checkpoint, resume_from=source)
