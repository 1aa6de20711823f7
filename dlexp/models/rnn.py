"""Stacked LSTM / GRU over sequences, optionally bidirectional.

Inputs are read as [time, features] (`layers.sequence_shape`): a series window [T],
a multivariate sequence [T, F], or an image [H, W, C] read row by row (H steps of
W*C values). Token ids of a text column (the data gives `vocab_size`) go through an
embedding first, and each row is read only up to its length (its padding is skipped).
The readout is the last step (for a bidirectional layer: the forward direction's last
step with the backward direction's first) or the mean over steps. `causal=True` reads
tokens left to right and predicts the next one at every step: a language model.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from dlexp.models.layers import Dropout, masked_mean, sequence_shape, token_mask

CELLS = {"lstm": nnx.LSTMCell, "gru": nnx.GRUCell}
READOUTS = ("last", "mean")


def _rnn(cell: nnx.RNNCellBase, reverse: bool = False) -> nnx.RNN:
    # rngs=False: the zero initial carry needs no keys, and no RNG state ends up in the model.
    return nnx.RNN(cell, reverse=reverse, keep_order=reverse, rngs=False)


class RNN(nnx.Module):
    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        *,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        readout: str = "last",
        dropout: float = 0.0,
        embed: int = 64,
        causal: bool = False,
        vocab_size: int | None = None,
        rngs: nnx.Rngs,
    ):
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r} is not known; choose one of {', '.join(CELLS)}")
        if readout not in READOUTS:
            raise ValueError(f"model.readout={readout!r} is not known; choose one of {', '.join(READOUTS)}")
        if layers < 1:
            raise ValueError(f"model.layers={layers} must be at least 1")
        if causal and (bidirectional or not vocab_size):
            raise ValueError(
                "model.causal=true predicts each next token from the ones before: it needs a text column "
                "(dataset.text) and model.bidirectional=false"
            )
        self.vocab_size = int(vocab_size) if vocab_size else None
        self.task = "language_model" if causal else None  # dlexp.tasks.make_task reads it
        if self.vocab_size:
            self.embed = nnx.Embed(self.vocab_size, int(embed), rngs=rngs)
            self.seq_shape = (int(in_shape[0]), int(embed))
        else:
            self.embed = None
            self.seq_shape = sequence_shape(in_shape)
        self.hidden, self.bidirectional, self.readout = int(hidden), bool(bidirectional), readout
        Cell = CELLS[cell]
        self.layers = nnx.List()
        d = self.seq_shape[1]
        for _ in range(layers):
            fwd = _rnn(Cell(d, self.hidden, rngs=rngs))
            if self.bidirectional:
                self.layers.append(
                    nnx.Bidirectional(fwd, _rnn(Cell(d, self.hidden, rngs=rngs), reverse=True), rngs=False)
                )
            else:
                self.layers.append(fwd)
            d = self.hidden * (2 if self.bidirectional else 1)
        self.dropout = Dropout(dropout)
        self.out = nnx.Linear(d, num_outputs, rngs=rngs)

    def _carry(self, layer, batch: int):
        cell = layer.forward_rnn.cell if self.bidirectional else layer.cell
        carry = cell.initialize_carry((batch, cell.in_features), rngs=nnx.Rngs(0))  # zeros; the key is unused
        return (carry, carry) if self.bidirectional else carry

    def __call__(self, x, rngs=None):
        if self.task == "language_model":  # [B, L, vocab]: the next token's logits at every step
            return self.out(self.dropout(self.steps(x, rngs)[0], rngs=rngs))
        return self.out(self.features(x, rngs=rngs))

    def steps(self, x, rngs=None):
        """(every step's output [B, T, H], the real steps [B, T] or None for dense input)."""
        if self.embed is not None:
            keep = token_mask(x)
            lengths = keep.sum(axis=1)
            x = self.embed(x)
        else:
            keep = lengths = None
            x = x.reshape((x.shape[0], *self.seq_shape))
        for i, layer in enumerate(self.layers):
            if i:
                x = self.dropout(x, rngs=rngs)
            x = layer(x, initial_carry=self._carry(layer, x.shape[0]), seq_lengths=lengths)
        return x, keep

    def features(self, x, rngs=None):
        """The penultimate layer, what the output layer sees (the embedding projector shows it)."""
        x, keep = self.steps(x, rngs)
        if self.readout == "mean":
            h = x.mean(axis=1) if keep is None else masked_mean(x, keep)
        else:
            last = x[:, -1] if keep is None else x[jnp.arange(x.shape[0]), keep.sum(axis=1) - 1]
            h = (
                jnp.concatenate([last[:, : self.hidden], x[:, 0, self.hidden :]], axis=-1)
                if self.bidirectional
                else last
            )
        return self.dropout(h, rngs=rngs)
