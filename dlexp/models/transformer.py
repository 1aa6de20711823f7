"""A Transformer encoder: tokens + learned positional embeddings, pre-norm blocks of
multi-head self-attention and an MLP, then a [CLS] token (or the token mean) to the head.

Tokens are the time steps of a sequence ([T] or [T, F]), or for images ViT-style
patches: an [H, W, C] image is cut into (H/p)*(W/p) patches of p*p*C values, or the
token ids of a text column (the data gives `vocab_size`): embedded, with their padding
masked out of attention and of the mean pool. `causal=True` lets each token attend only
to the ones before it and predicts the next token at every position: a language model.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlexp.models.layers import Dropout, masked_mean, sequence_shape, token_mask

POOLS = ("cls", "mean")


def patchify(x: jax.Array, p: int) -> jax.Array:
    """[B, H, W, C] -> [B, (H/p)*(W/p), p*p*C], patches in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


class EncoderBlock(nnx.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)); dropout after each."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, dim, dropout_rate=dropout, decode=False, keep_rngs=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.fc1 = nnx.Linear(dim, mlp_dim, rngs=rngs)
        self.fc2 = nnx.Linear(mlp_dim, dim, rngs=rngs)
        self.dropout = Dropout(dropout)

    def __call__(self, x, mask=None, rngs=None):
        x = x + self.dropout(self.attn(self.norm1(x), mask=mask, rngs=rngs), rngs=rngs)
        return self.feed_forward(x, rngs)

    def feed_forward(self, x, rngs=None):
        h = self.dropout(nnx.gelu(self.fc1(self.norm2(x))), rngs=rngs)
        return x + self.dropout(self.fc2(h), rngs=rngs)


def attention_mask(keep: jax.Array, causal: bool = False) -> jax.Array:
    """bool [B, 1, queries, keys] from the real tokens `keep` [B, n]: padding is never a key, and
    a causal query sees only itself and the keys before it."""
    mask = keep[:, None, None, :]
    if causal:
        n = keep.shape[1]
        mask = mask & jnp.tril(jnp.ones((n, n), bool))[None, None]
    return mask


class Transformer(nnx.Module):
    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        *,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        patch: int = 2,
        pool: str = "cls",
        dropout: float = 0.1,
        causal: bool = False,
        vocab_size: int | None = None,
        rngs: nnx.Rngs,
    ):
        if pool not in POOLS:
            raise ValueError(f"model.pool={pool!r} is not known; choose one of {', '.join(POOLS)}")
        if dim % heads:
            raise ValueError(f"model.dim={dim} must be a multiple of model.heads={heads}")
        if causal and not vocab_size:
            raise ValueError("model.causal=true predicts each next token: it needs a text column (dataset.text)")
        self.in_shape = tuple(int(s) for s in in_shape)
        self.vocab_size = int(vocab_size) if vocab_size else None
        self.task = "language_model" if causal else None  # dlexp.tasks.make_task reads it
        if causal:
            pool = "mean"  # no [CLS]: every position has its own output
        if self.vocab_size:
            self.patch = None
            tokens, features = self.in_shape[0], 0
        elif len(self.in_shape) == 3:  # an image: ViT patches
            h, w, c = self.in_shape
            if patch < 1 or h % patch or w % patch:
                raise ValueError(f"model.patch={patch} must divide the image size {h}x{w}")
            self.patch = int(patch)
            tokens, features = (h // patch) * (w // patch), patch * patch * c
        else:
            self.patch = None
            tokens, features = sequence_shape(self.in_shape)
        self.pool = pool
        self.embed = (
            nnx.Embed(self.vocab_size, dim, rngs=rngs) if self.vocab_size else nnx.Linear(features, dim, rngs=rngs)
        )
        n = tokens + (pool == "cls")
        self.pos = nnx.Param(jax.random.normal(rngs.params(), (1, n, dim)) * 0.02)
        self.cls = nnx.Param(jnp.zeros((1, 1, dim))) if pool == "cls" else None
        self.blocks = nnx.List(
            [EncoderBlock(dim, heads, int(dim * mlp_ratio), dropout, rngs=rngs) for _ in range(depth)]
        )
        self.dropout = Dropout(dropout)
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.out = nnx.Linear(dim, num_outputs, rngs=rngs)

    def tokens(self, x):
        x = x.reshape((x.shape[0], *self.in_shape))
        if self.patch is not None:
            return patchify(x, self.patch)
        return x.reshape((x.shape[0], *sequence_shape(self.in_shape)))

    def __call__(self, x, rngs=None):
        if self.task == "language_model":  # [B, L, vocab]: the next token's logits at every position
            return self.out(self.encode(x, rngs)[0])
        return self.out(self.features(x, rngs=rngs))

    def encode(self, x, rngs=None):
        """(every token after the blocks [B, n, dim], the real tokens [B, n] or None for dense input)."""
        if self.vocab_size:
            keep = token_mask(x)
            t = self.embed(x)
        else:
            keep = None
            t = self.embed(self.tokens(x))
        if self.cls is not None:
            t = jnp.concatenate(
                [jnp.broadcast_to(self.cls[...].astype(t.dtype), (t.shape[0], 1, t.shape[2])), t], axis=1
            )
            keep = None if keep is None else jnp.concatenate([jnp.ones_like(keep[:, :1]), keep], axis=1)
        t = self.dropout(t + self.pos[...].astype(t.dtype), rngs=rngs)
        # causal models read token ids: a mask is there
        mask = None if keep is None else attention_mask(keep, causal=self.task == "language_model")
        for block in self.blocks:
            t = block(t, mask=mask, rngs=rngs)
        return self.norm(t), keep

    def features(self, x, rngs=None):
        """The penultimate layer, what the output layer sees (the embedding projector shows it)."""
        t, keep = self.encode(x, rngs)
        if self.cls is not None:
            return t[:, 0]
        return t.mean(axis=1) if keep is None else masked_mean(t, keep)
