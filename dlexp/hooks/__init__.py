"""Hooks: checkpoints, early stopping, preemption, profiling, plots and inspection.

`build_hooks` turns a run's config into its hooks, in the order they run at each event:
the ones that may stop the loop first, the checkpoint last, so it saves the state they
stopped at. The interface is `dlexp.hooks.base.Hook`.
"""

from __future__ import annotations

import logging
import os

from dlexp.config import TrainConfig
from dlexp.hooks.base import Hook

log = logging.getLogger("dlexp")

__all__ = ["Hook", "build_hooks"]


def build_hooks(cfg: TrainConfig, run_dir: str, *, copies: bool = False) -> list[Hook]:
    from dlexp import optim
    from dlexp.hooks.checkpoint import CheckpointHook
    from dlexp.hooks.inspection import Embeddings, LayerStats, TestConfusion
    from dlexp.hooks.plots import ClassificationPlots, GANSamples, Reconstructions, RegressionPlots
    from dlexp.hooks.profile import ProfileHook
    from dlexp.hooks.stopping import EarlyStopping, Preemption
    from dlexp.resume import resume_source

    hooks: list[Hook] = [Preemption()]  # SIGTERM / SIGINT: stop after this call, save, status "preempted"
    if cfg.logger.profile_steps:  # a JAX profiler trace of a few steps (debug=profile)
        hooks.append(ProfileHook(os.path.join(run_dir, "tb"), cfg.logger.profile_steps))
    hooks.append(TestConfusion())
    if cfg.logger.histograms_every:
        make_tx = lambda total: optim.make_optimizer(cfg.optimizer, cfg.schedule, total)[0]  # noqa: E731
        hooks.append(LayerStats(cfg.logger.histograms_every, make_tx, seed=cfg.seed))
    if cfg.logger.embeddings:
        hooks.append(Embeddings(cfg.logger.embedding_samples, seed=cfg.seed))
    if cfg.logger.tensorboard and cfg.logger.plots:
        hooks += [ClassificationPlots(), RegressionPlots(), GANSamples(cfg.seed), Reconstructions()]
    es = cfg.trainer.early_stopping
    if es.patience is not None:
        hooks.append(EarlyStopping(es.patience, es.min_delta))
    source = resume_source(cfg, run_dir)  # this dir's checkpoints, trainer.resume's, or none
    if cfg.trainer.checkpoint.enabled:  # last: it saves the state the hooks above stopped at
        hooks.append(CheckpointHook(run_dir, cfg.trainer.checkpoint, resume_from=source))
    if copies:
        left = sorted({type(h).__name__ for h in hooks if not h.copies_ok})
        if left:
            log.info("trainer.seeds: %s work on single runs and are left out", ", ".join(left))
        hooks = [h for h in hooks if h.copies_ok]
    return hooks
