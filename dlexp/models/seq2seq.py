"""An encoder-decoder Transformer for text to text (translation, summarization).

The encoder is dlexp's `Transformer` over the source ids (padding masked as a key). The
decoder embeds the target ids with the same embedding (source and target share one
tokenizer), adds its own learned positions, and runs pre-norm blocks of causal
self-attention, cross-attention to the encoder's tokens (source padding masked) and an
MLP. The output is the next target token's logits at every target position,
[B, Lt, vocab]: the `seq2seq` task trains it with teacher forcing and decodes with
`encode` once and `decode` per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlexp.models.layers import Dropout, token_mask
from dlexp.models.transformer import EncoderBlock, Transformer, attention_mask


class DecoderBlock(EncoderBlock):
    """An encoder block with cross-attention to the source between its self-attention and MLP."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, *, rngs: nnx.Rngs):
        super().__init__(dim, heads, mlp_dim, dropout, rngs=rngs)
        self.norm_cross = nnx.LayerNorm(dim, rngs=rngs)
        self.cross = nnx.MultiHeadAttention(heads, dim, dropout_rate=dropout, decode=False, keep_rngs=False, rngs=rngs)

    def __call__(self, x, mask=None, rngs=None, *, memory, memory_mask):
        x = x + self.dropout(self.attn(self.norm1(x), mask=mask, rngs=rngs), rngs=rngs)
        x = x + self.dropout(self.cross(self.norm_cross(x), memory, mask=memory_mask, rngs=rngs), rngs=rngs)
        return self.feed_forward(x, rngs)


class Seq2Seq(nnx.Module):
    task = "seq2seq"  # dlexp.tasks.make_task reads it

    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        *,
        vocab_size: int | None = None,
        dim: int = 64,
        encoder_depth: int = 2,
        decoder_depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        rngs: nnx.Rngs,
    ):
        if not vocab_size:
            raise ValueError("model=seq2seq reads token ids: it needs dataset.text and dataset.target_text")
        # the source and the target share the tokenizer's max_length: the decoder has as many positions
        self.target_length = int(in_shape[0])
        mlp_dim = int(dim * mlp_ratio)
        # num_outputs=1: the encoder's own head is never called (a dim-wide vector)
        self.encoder = Transformer(
            in_shape,
            1,
            dim=dim,
            depth=encoder_depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            pool="mean",
            dropout=dropout,
            vocab_size=vocab_size,
            rngs=rngs,
        )
        self.pos = nnx.Param(jax.random.normal(rngs.params(), (1, self.target_length, dim)) * 0.02)
        self.blocks = nnx.List([DecoderBlock(dim, heads, mlp_dim, dropout, rngs=rngs) for _ in range(decoder_depth)])
        self.dropout = Dropout(dropout)
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.out = nnx.Linear(dim, num_outputs, rngs=rngs)

    def __call__(self, inputs, rngs=None):
        """(source ids [B, Ls], target ids [B, Lt]) -> logits [B, Lt, vocab]; position t reads target[:t+1]."""
        source, target = inputs
        memory, keep = self.encode(source, rngs)
        return self.decode(target, memory, keep, rngs)

    def encode(self, source, rngs=None):
        """(the source's tokens after the encoder [B, Ls, dim], its real tokens [B, Ls])."""
        return self.encoder.encode(source, rngs)

    def decode(self, target, memory, keep, rngs=None):
        n = target.shape[1]
        t = self.encoder.embed(target)
        t = self.dropout(t + self.pos[...][:, :n].astype(t.dtype), rngs=rngs)
        mask = attention_mask(token_mask(target), causal=True)
        memory_mask = jnp.broadcast_to(keep[:, None, None, :], (keep.shape[0], 1, n, keep.shape[1]))
        for block in self.blocks:
            t = block(t, mask=mask, rngs=rngs, memory=memory, memory_mask=memory_mask)
        return self.out(self.norm(t))
