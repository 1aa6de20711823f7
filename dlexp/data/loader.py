"""Loaders: where the trainer's batches come from.

A loader gives the trainer, for each compiled call of `n` steps, a pytree of device
arrays (`call_args`), and inside the jitted call picks batch `i` out of it
(`batch`). `ResidentLoader` keeps the whole split on device and gathers rows there;
a streaming loader can hand over `n` prefetched batches instead, and the loop does
not change. The epoch order is a seeded numpy permutation (`epoch_order`), so every
loader draws the same batches for the same seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def epoch_order(n: int, seed: int, epoch: int, batch_size: int) -> np.ndarray:
    """The row order of one epoch, trimmed to whole batches."""
    steps = n // batch_size
    return np.random.default_rng([seed, epoch]).permutation(n)[: steps * batch_size].astype(np.int32)


class ResidentLoader:
    """A training split on device plus the per-epoch order to draw batches in."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, sharding):
        self.n = int(x.shape[0])
        self.batch_size = batch_size
        self.seed = seed
        self.sharding = sharding
        self.x = jax.device_put(x, sharding)
        self.y = jax.device_put(y, sharding)
        self.steps_per_epoch = self.n // batch_size
        self._epoch, self._order = None, None

    def example(self) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
        """Shape and dtype of one batch (x, y), for tracing without data."""
        b = self.batch_size
        return (jax.ShapeDtypeStruct((b, *self.x.shape[1:]), self.x.dtype),
                jax.ShapeDtypeStruct((b, *self.y.shape[1:]), self.y.dtype))

    def call_args(self, epoch: int, start: int, n: int):
        """Device arrays for steps start..start+n-1 of `epoch` (only the order is new per epoch)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = jax.device_put(epoch_order(self.n, self.seed, epoch, self.batch_size), self.sharding)
        return (self.x, self.y, self._order, np.int32(start))

    def batch(self, args, i):
        """Inside jit: batch i of a call."""
        x, y, order, start = args
        return take_batch(x, y, order, start + i, self.batch_size)


def take_batch(x, y, order, i, batch_size: int):
    """Inside jit: rows order[i*B:(i+1)*B] of the resident arrays."""
    idx = jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
    return jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)


class EvalSet:
    """An evaluation split on device as [batches, B, ...] with 0/1 weights for the padding."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, sharding, multiple: int = 1):
        n = int(x.shape[0])
        b = max(1, min(batch_size, n))
        b = -(-b // multiple) * multiple  # whole batches per device
        nb = -(-n // b)
        pad = nb * b - n
        w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
        self.n, self.num_batches, self.batch_size = n, nb, b
        self.x = jax.device_put(x.reshape(nb, b, *x.shape[1:]), sharding)
        self.y = jax.device_put(y.reshape(nb, b, *y.shape[1:]), sharding)
        self.w = jax.device_put(w.reshape(nb, b), sharding)
