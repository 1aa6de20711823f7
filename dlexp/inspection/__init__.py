"""Inspection: what a run shows about itself beyond its metrics.

Hooks (added by `inspection_hooks`, from the `logger` config):
  logger.histograms_every=N   per-layer histograms of params and grads, update ratios (layer_stats.py)
  logger.embeddings=true      penultimate-layer features of val samples for the projector (embeddings.py)
  always, for classification  the test confusion matrix into summary.json (confusion.py)

Reading runs back: `events.scalars_table` (every scalar under a dir as one Polars
table), `python -m dlexp.report` (PNG plots and a markdown summary).
"""

from __future__ import annotations

from typing import Any

from dlexp.hooks import Hook


def inspection_hooks(cfg: Any) -> list[Hook]:
    """The inspection hooks a run's config asks for."""
    from dlexp import optim
    from dlexp.inspection.confusion import TestConfusion
    from dlexp.inspection.embeddings import Embeddings
    from dlexp.inspection.layer_stats import LayerStats

    hooks: list[Hook] = [TestConfusion()]
    every = cfg.logger.get("histograms_every")
    if every:
        make_tx = lambda total: optim.make_optimizer(cfg.optimizer, cfg.schedule, total)[0]  # noqa: E731
        hooks.append(LayerStats(every, make_tx, seed=cfg.seed))
    if cfg.logger.get("embeddings"):
        hooks.append(Embeddings(cfg.logger.get("embedding_samples", 500), seed=cfg.seed))
    return hooks
