"""Language modelling: predict every next token of a text column's token ids.

The data is text without a label (`dataset.label=null`); the model is causal
(`model.causal=true`: a Transformer whose tokens see only earlier ones, or a left-to-right
LSTM / GRU) and gives the next token's logits at every position, [B, L, vocab]. The
loss is the cross-entropy of position t's logits against token t+1, over real tokens
only (padding is never a target), averaged over the tokens of the batch. Reported:
`loss` (nats per token), `perplexity` = exp(loss), the quantity the model is usually
compared by (val/perplexity can be the objective), and next-token `accuracy`.

`make_sampler` continues prompts greedily or by sampling at a temperature; the
`TextSamples` hook (dlexp/hooks/text.py) writes its samples to TensorBoard's text tab.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from dlexp.data.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from dlexp.metrics import divisor
from dlexp.models.layers import token_mask
from dlexp.models.split import SplitModel
from dlexp.tasks.base import Task, apply

NEVER_SAMPLED = (PAD_ID, UNK_ID, BOS_ID)  # never a continuation


def next_token_nll(logits, ids):
    """(NLL of each next token [B, L-1], which of them are real tokens [B, L-1])."""
    nxt = ids[:, 1:]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1].astype(jnp.float32), nxt)
    return nll, token_mask(nxt)


@dataclass(frozen=True, kw_only=True)
class LanguageModel(Task):
    name = "language_model"
    metric_names = ("loss", "perplexity", "accuracy")

    def targets(self, x, y):  # the text itself, shifted by one inside the loss
        return x

    def loss(self, logits, ids):
        """Per example: the mean NLL over its real next tokens."""
        nll, keep = next_token_nll(logits, ids)
        return (nll * keep).sum(axis=1) / jnp.maximum(keep.sum(axis=1), 1)

    def train_losses(self, losses, logits, ids, hyper):
        """Per example: its summed NLL over the batch's mean tokens per example, so that the batch
        mean the step takes is the NLL per token of the batch (long rows count by their tokens)."""
        nll, keep = next_token_nll(logits, ids)
        per_row = keep.sum(axis=1)
        return (nll * keep).sum(axis=1) / jnp.maximum(per_row.mean(), 1)

    def sums(self, losses, logits, ids, weights):
        nll, keep = next_token_nll(logits, ids)
        w = keep * weights[:, None]
        hit = logits[:, :-1].argmax(-1) == ids[:, 1:]
        # "loss": the summed NLL of every real next token (the loop's guard reads it)
        return {"loss": jnp.sum(nll * w), "tokens": jnp.sum(w), "correct": jnp.sum(hit * w), "count": jnp.sum(weights)}

    def finalize(self, sums) -> dict[str, float]:
        tokens = divisor(sums["tokens"])
        loss = float(sums["loss"]) / tokens
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),  # exp overflows a float past ~709 nats
            "accuracy": float(sums["correct"]) / tokens,
        }

    def make_sampler(self, sm: SplitModel, temperature: float) -> Callable:
        """(params, rest, prompt ids [k, L], prompt lengths [k], key) -> ids [k, L]: each row
        continued after its prompt up to [EOS] (then padding), greedily if temperature is 0.
        The model reads the whole row at every step: no cache, for a few samples per evaluation."""

        def sample(params, rest, ids, lengths, key):
            rows = jnp.arange(ids.shape[0])

            def step(t, carry):
                ids, done = carry
                logits = apply(sm.eval_def, params, rest, lambda m: m(ids))[0][:, t - 1]
                logits = logits.at[:, jnp.array(NEVER_SAMPLED)].set(-jnp.inf)
                if temperature > 0:
                    nxt = jax.random.categorical(jax.random.fold_in(key, t), logits / temperature)
                else:
                    nxt = logits.argmax(-1)
                given = t < lengths
                nxt = jnp.where(given, ids[:, t], jnp.where(done, PAD_ID, nxt))
                done = done | (~given & (nxt == EOS_ID))
                return ids.at[rows, t].set(nxt.astype(ids.dtype)), done

            ids, _ = jax.lax.fori_loop(1, ids.shape[1], step, (ids, jnp.zeros(ids.shape[0], bool)))
            return ids

        return sample
