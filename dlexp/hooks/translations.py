"""A seq2seq run's scores on decoded text: BLEU, chrF and exact match of val and test.

These are scores of whole decoded sentences, which the jitted eval step (sums over
batches) cannot give. At each evaluation the val split is decoded greedily and scored
against its references (val/bleu, val/chrf, val/exact_match, also in the copy's val
metrics); after the test evaluation the best state decodes the test split greedily and
with beam search (test/bleu, ..., and test/beam_bleu, ...). The best state is chosen by
the loop before this hook runs, so objective.metric stays one of the task's own
(val/loss, val/token_accuracy). Examples (source, reference, greedy, beam) go to
TensorBoard's text tab at each evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from dlexp.config import TrainConfig
from dlexp.data import text
from dlexp.hooks.base import Hook
from dlexp.loggers.layout import split_tags
from dlexp.saved_run import batched
from dlexp.tasks.seq2seq import text_scores


def decode_rows(decoder: Callable, params, rest, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Target ids [n, L] for every source row of x, in fixed-size batches (one compilation)."""
    parts = batched(lambda xb: decoder(params, rest, xb), (x,), batch_size)
    return np.concatenate([np.asarray(o)[:k] for o, k in parts])


class Translations(Hook):
    reads_splits = True

    def __init__(self, beam_size: int = 4, examples: int = 4, batch_size: int = 256, tensorboard: bool = True):
        self.beam_size, self.examples, self.batch_size, self.tensorboard = beam_size, examples, batch_size, tensorboard
        self.decoders: dict[str, Callable] = {}

    def on_start(self, ctx: Any, loop: Any) -> None:
        if ctx.task.name != "seq2seq" or ctx.data.tokenizer is None:
            return
        length = int(ctx.data.y["val"].shape[1])
        self.rows = max(1, min(self.batch_size, len(ctx.data.x["val"])))  # one batch shape: one compilation each
        self.decoders = {"greedy": jax.jit(ctx.task.make_decoder(ctx.model, length))}
        if self.beam_size > 1:
            self.decoders["beam"] = jax.jit(ctx.task.make_decoder(ctx.model, length, self.beam_size))

    def decoded(self, ctx: Any, params, rest, split: str, decoder: str, rows: int | None = None) -> list[str]:
        x = np.asarray(ctx.data.x[split][:rows])
        return text.decode(ctx.data.tokenizer, decode_rows(self.decoders[decoder], params, rest, x, self.rows))

    def scores(self, ctx: Any, params, rest, split: str, decoder: str = "greedy") -> tuple[dict[str, float], list[str]]:
        """(BLEU, chrF, exact match of the split decoded by `decoder`, the decoded texts)."""
        found = self.decoded(ctx, params, rest, split, decoder)
        return text_scores(found, text.decode(ctx.data.tokenizer, np.asarray(ctx.data.y[split]))), found

    def on_eval(self, ctx: Any, loop: Any, improved: list[bool]) -> None:
        if not self.decoders:
            return
        params, rest = loop.state["params"], loop.state["rest"]
        found, greedy = self.scores(ctx, params, rest, "val")
        ctx.writers.scalars(loop.step, split_tags("val", found))
        copy = loop.copies[0]
        copy.last_val = {**copy.last_val, **found}
        if improved[0]:
            copy.best_val = {**copy.best_val, **found}
        if self.tensorboard:
            ctx.writers.text("translations", self.examples_text(ctx, params, rest, greedy, loop.step), loop.step)

    def examples_text(self, ctx: Any, params, rest, greedy: list[str], step: int) -> str:
        """The first val rows: source, reference, greedy (decoded already), beam."""
        tok, n = ctx.data.tokenizer, min(self.examples, len(greedy))
        columns = {
            "source": text.decode(tok, np.asarray(ctx.data.x["val"][:n])),
            "reference": text.decode(tok, np.asarray(ctx.data.y["val"][:n])),
            "greedy": greedy[:n],
        }
        if "beam" in self.decoders:  # one batch of the usual shape: no compilation of its own
            columns["beam"] = self.decoded(ctx, params, rest, "val", "beam", self.rows)[:n]
        rows = [" | ".join(f"{k}: {v[i]!r}" for k, v in columns.items()) for i in range(n)]
        return f"val examples, step {step}:\n" + "\n".join(rows)

    def on_end(self, ctx: Any, loop: Any, summary: dict) -> None:
        if not self.decoders or loop.best_state is None or "test" not in summary or not summary["test"]:
            return
        params, rest = loop.best_state
        found = {k: v for name in self.decoders for k, v in self.test_scores(ctx, params, rest, name).items()}
        summary["test"].update(found)
        ctx.writers.scalars(loop.step, split_tags("test", found))

    def test_scores(self, ctx: Any, params, rest, decoder: str) -> dict[str, float]:
        prefix = "" if decoder == "greedy" else f"{decoder}_"
        return {f"{prefix}{k}": v for k, v in self.scores(ctx, params, rest, "test", decoder)[0].items()}


def translations(cfg: TrainConfig, beam_size: int = 4, examples: int = 4, batch_size: int = 256) -> Translations:
    """A seq2seq run's BLEU / chrF (always: they are its headline scores); examples with TensorBoard."""
    return Translations(beam_size, examples, batch_size, tensorboard=bool(cfg.logger.tensorboard))
