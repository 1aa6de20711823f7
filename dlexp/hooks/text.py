"""Samples of a language model in TensorBoard's text tab, at each evaluation.

The prompts are the first `prompt_tokens` tokens of the first `count` val rows, the
same at every evaluation, so the samples show how the continuations change as the
model learns. Each is continued greedily (`samples/greedy`) and by sampling at
`temperature` with a fixed key (`samples/temperature`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dlexp.config import TrainConfig
from dlexp.data import text
from dlexp.hooks.base import Hook


class TextSamples(Hook):
    reads_splits = True

    def __init__(self, count: int = 4, prompt_tokens: int = 4, temperature: float = 0.8, seed: int = 0):
        self.count, self.prompt_tokens, self.temperature, self.seed = count, prompt_tokens, temperature, seed
        self.samplers: dict[str, Any] = {}

    def on_start(self, ctx: Any, loop: Any) -> None:
        if ctx.task.name != "language_model" or ctx.data.tokenizer is None:
            return
        x = np.asarray(ctx.data.x["val"][: self.count])
        real = (x != text.PAD_ID).sum(axis=1) - 1  # tokens before [EOS]
        self.lengths = np.minimum(real, self.prompt_tokens + 1).astype(np.int32)  # [BOS] and the prompt
        self.prompts = np.where(np.arange(x.shape[1]) < self.lengths[:, None], x, text.PAD_ID).astype(np.int32)
        self.samplers = {
            "greedy": jax.jit(ctx.task.make_sampler(ctx.model, 0.0)),
            "temperature": jax.jit(ctx.task.make_sampler(ctx.model, self.temperature)),
        }

    def on_eval(self, ctx: Any, loop: Any, improved: list[bool]) -> None:
        if not self.samplers:
            return
        tok = ctx.data.tokenizer
        params, rest = loop.state["params"], loop.state["rest"]
        key = jax.random.key(self.seed)
        shown = text.decode(tok, self.prompts)
        for name, sample in self.samplers.items():
            ids = np.asarray(sample(params, rest, self.prompts, self.lengths, key))
            rows = text.decode(tok, ids)
            title = "greedy" if name == "greedy" else f"temperature {self.temperature}"
            lines = [f"{p!r} -> {r!r}" for p, r in zip(shown, rows)]
            ctx.writers.text(f"samples/{name}", f"{title}, step {loop.step}:\n" + "\n".join(lines), loop.step)


def text_samples(
    cfg: TrainConfig, count: int = 4, prompt_tokens: int = 4, temperature: float = 0.8
) -> TextSamples | None:
    """A language model's samples into TensorBoard (on with logger.tensorboard)."""
    if not cfg.logger.tensorboard:
        return None
    return TextSamples(count, prompt_tokens, temperature, seed=cfg.seed)
