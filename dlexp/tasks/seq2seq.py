"""Sequence to sequence: a source text column in, a target text column out.

x holds the source ids [B, Ls], y the target ids [B, Lt] ([BOS] tokens [EOS], padded with
0). Training is teacher forcing: the decoder reads the target and position t predicts
token t+1, so its input is the target shifted right and starting with [BOS]. The loss is
the cross-entropy over the real target tokens (padding is never a target), per token of
the batch: a language model's loss over the target (`LanguageModel`), given the source.
Reported: `loss`, `perplexity`, `token_accuracy`.

BLEU and chrF need whole decoded sentences, so they are not sums of a jitted eval step:
the `Translations` hook (dlexp/hooks/translations.py) decodes the val split at each
evaluation and the test split at the end with `make_decoder` (greedy, or beam search).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dlexp.data.text import BOS_ID, EOS_ID, PAD_ID
from dlexp.models.split import SplitModel
from dlexp.tasks.base import apply
from dlexp.tasks.language_model import NEVER_SAMPLED, LanguageModel


@dataclass(frozen=True, kw_only=True)
class Seq2SeqTask(LanguageModel):
    """A language model of the target that also reads the source: the same loss and sums, over y."""

    name = "seq2seq"
    metric_names = ("loss", "perplexity", "token_accuracy")

    def targets(self, x, y):
        return y

    def inputs(self, x, y):  # teacher forcing: position t of the decoder reads target[:t+1]
        return (x, y)

    def finalize(self, sums) -> dict[str, float]:
        found = super().finalize(sums)
        found["token_accuracy"] = found.pop("accuracy")  # of the next target token, given the true ones before it
        return found

    def make_decoder(self, sm: SplitModel, length: int, beam_size: int = 1) -> Callable:
        """(params, rest, source ids [B, Ls]) -> target ids [B, length]: [BOS], the decoded tokens up
        to [EOS], then padding. beam_size 1 is greedy; larger keeps that many hypotheses."""
        if beam_size < 1:
            raise ValueError(f"beam_size={beam_size} must be at least 1")

        def decoder(params, rest, source):
            memory, keep = apply(sm.eval_def, params, rest, lambda m: m.encode(source))[0]

            def next_logits(target, mem, kp, t):
                logits = apply(sm.eval_def, params, rest, lambda m: m.decode(target, mem, kp))[0][:, t - 1]
                return logits.at[:, jnp.array(NEVER_SAMPLED)].set(-jnp.inf)

            if beam_size == 1:
                return greedy(next_logits, memory, keep, length)
            return beam_search(next_logits, memory, keep, length, beam_size)

        return decoder


def start(rows: int, length: int) -> jax.Array:
    return jnp.zeros((rows, length), jnp.int32).at[:, 0].set(BOS_ID)


def greedy(next_logits: Callable, memory, keep, length: int) -> jax.Array:
    """The most likely token at each step, until every row has its [EOS] or `length` is reached."""
    rows = memory.shape[0]

    def step(carry):
        ids, done, t = carry
        nxt = jnp.where(done, PAD_ID, next_logits(ids, memory, keep, t).argmax(-1))
        return ids.at[:, t].set(nxt.astype(jnp.int32)), done | (nxt == EOS_ID), t + 1

    ids, _, _ = jax.lax.while_loop(
        lambda c: (c[2] < length) & ~c[1].all(), step, (start(rows, length), jnp.zeros(rows, bool), 1)
    )
    return ids


def beam_search(next_logits: Callable, memory, keep, length: int, k: int) -> jax.Array:
    """The most likely of `k` hypotheses per row by summed log-probability. A finished hypothesis
    only extends with padding at no cost, so it competes with the unfinished ones as it is."""
    rows = memory.shape[0]
    memory, keep = (jnp.repeat(a, k, axis=0) for a in (memory, keep))  # row i's beams at i*k ... i*k+k-1

    def step(carry):
        ids, scores, done, t = carry  # [rows, k, length], [rows, k], [rows, k]
        logp = jax.nn.log_softmax(next_logits(ids.reshape(rows * k, length), memory, keep, t)).reshape(rows, k, -1)
        vocab = logp.shape[-1]
        finished = jnp.where(jnp.arange(vocab) == PAD_ID, 0.0, -jnp.inf)
        logp = jnp.where(done[..., None], finished, logp)
        best, flat = jax.lax.top_k((scores[..., None] + logp).reshape(rows, k * vocab), k)
        beam, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        ids = jnp.take_along_axis(ids, beam[..., None], axis=1).at[:, :, t].set(token)
        done = jnp.take_along_axis(done, beam, axis=1) | (token == EOS_ID)
        return ids, best, done, t + 1

    ids = jnp.broadcast_to(start(rows, length)[:, None], (rows, k, length))
    scores = jnp.tile(jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf), (rows, 1))  # one start, not k copies of it
    carry = (ids, scores, jnp.zeros((rows, k), bool), 1)
    ids, scores, _, _ = jax.lax.while_loop(lambda c: (c[3] < length) & ~c[2].all(), step, carry)
    return ids[:, 0]  # top_k keeps the beams sorted, best first


def text_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu, 0-100) and the fraction of exact matches."""
    import sacrebleu

    refs = [list(references)]
    exact = sum(h == r for h, r in zip(hypotheses, references)) / max(len(references), 1)
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(hypotheses), refs).score),
        "chrf": float(sacrebleu.corpus_chrf(list(hypotheses), refs).score),
        "exact_match": float(exact),
    }
