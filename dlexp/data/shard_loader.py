"""Loaders for sharded data (trainer.data_shards > 1): each step's global batch is built from
every shard's own rows, and no process needs another's.

With S shards and a batch of B rows, part p of each batch is B / S rows of shard p, drawn in
shard p's own per-epoch permutation (`shard_order`). An epoch is as many steps as the
smallest shard gives. The arrays are global with a leading shard axis sharded over the
mesh ([S, rows, ...], P("data")), assembled from each process's own shards
(`jax.make_array_from_process_local_data`); the gather runs per shard (a vmap over that
axis), so it stays on the devices that hold the shard. One process holding every shard
builds the same arrays, which is why it trains exactly like several processes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dlexp.data.loader import EvalSet, StreamingLoader, batch_shape, read_rows, targets
from dlexp.data.shards import LocalShards
from dlexp.errors import ConfigError


def shard_order(n: int, seed: int, epoch: int, shard: int, rows: int) -> np.ndarray:
    """The first `rows` of shard `shard`'s permutation of its `n` train rows in `epoch`."""
    return np.random.default_rng([seed, epoch, shard]).permutation(n)[:rows].astype(np.int32)


def shard_batch(batch_size: int, shards: LocalShards) -> tuple[int, int]:
    """(rows per shard in a batch, steps per epoch: as many as the smallest shard gives;
    `dlexp.loop.plan.shard_steps` has checked that every shard fills its part)."""
    part = batch_size // shards.spec.count
    return part, min(n // part for n in shards.sizes["train"])


def check_mesh(mesh: Mesh, shards: LocalShards) -> None:
    """Each device holds whole shards, and a process's devices hold its own ones."""
    count, devices = shards.spec.count, list(mesh.devices.flat)
    if count % len(devices):
        raise ConfigError(
            f"trainer.data_shards={count} does not split over the mesh's {len(devices)} devices; "
            f"use a multiple of {len(devices)}"
        )
    per = count // len(devices)
    owners = [devices[p // per].process_index for p in shards.spec.owned]
    if set(owners) != {jax.process_index()}:
        raise ConfigError(
            f"the devices of process {jax.process_index()} do not hold its data shards {shards.spec.owned}"
        )


def global_array(local: np.ndarray, sharding: NamedSharding, axis: int, size: int) -> jax.Array:
    """The global array whose `axis` (`size` long in all) is split over the processes, from
    this process's part of it."""
    shape = list(local.shape)
    shape[axis] = size
    return jax.make_array_from_process_local_data(sharding, local, tuple(shape))


def _padded(a: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), a.dtype)]) if len(a) < rows else a


class ShardedLoader:
    """The train split resident on device as [S, rows, ...], each shard on its own devices."""

    copy_axes = None

    def __init__(self, shards: LocalShards, ys: list, batch_size: int, seed: int, mesh: Mesh):
        check_mesh(mesh, shards)
        self.shards, self.seed, self.batch_size = shards, seed, batch_size
        self.count = shards.spec.count
        self.part, self.steps_per_epoch = shard_batch(batch_size, shards)
        self.n = self.part * self.steps_per_epoch * self.count  # rows one epoch draws
        self.sharding = NamedSharding(mesh, P("data"))
        self.replicated = NamedSharding(mesh, P())
        rows = max(shards.sizes["train"])
        x = np.stack([_padded(a, rows) for a in shards.x["train"]])
        y = jax.tree.map(lambda *parts: np.stack([_padded(a, rows) for a in parts]), *ys)
        self.x = global_array(x, self.sharding, 0, self.count)
        self.y = jax.tree.map(lambda a: global_array(a, self.sharding, 0, self.count), y)
        self._epoch, self._order = None, None
        self._starts: dict[int, jax.Array] = {}

    def example(self):
        """Shape and dtype of one global batch (x, y), for tracing without data."""
        return batch_shape(self.x[0], self.batch_size), batch_shape(
            jax.tree.map(lambda a: a[0], self.y), self.batch_size
        )

    def call_args(self, epoch: int, start: int, n: int):
        if epoch != self._epoch:
            sizes, rows = self.shards.sizes["train"], self.part * self.steps_per_epoch
            order = np.stack([shard_order(sizes[p], self.seed, epoch, p, rows) for p in self.shards.spec.owned])
            self._epoch, self._order = epoch, global_array(order, self.sharding, 0, self.count)
        if start not in self._starts:
            self._starts[start] = jax.device_put(np.int32(start), self.replicated)
        return (self.x, self.y, self._order, self._starts[start])

    def batch(self, args, i, shard=None):
        """Inside jit: batch i of a call, each shard's part gathered from its own rows."""
        x, y, order, start = args
        idx = jax.lax.dynamic_slice_in_dim(order, (start + i) * self.part, self.part, axis=1)  # [S, part]
        take = jax.vmap(lambda a, ix: jnp.take(a, ix, axis=0))
        flat = lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])  # noqa: E731  [S, part] -> [B]
        return flat(take(x, idx)), jax.tree.map(lambda a: flat(take(a, idx)), y)

    def close(self) -> None:
        """Nothing to stop."""


class ShardedStreamingLoader(StreamingLoader):
    """Each owned shard's prepared train file read in its own order; a call's batches are
    [k, S, part, ...] global arrays assembled from the owned shards' windows."""

    def __init__(self, shards: LocalShards, ys: list, batch_size: int, seed: int, mesh: Mesh, **kw):
        check_mesh(mesh, shards)
        assert shards.streams is not None  # a streamed train split
        super().__init__(shards.streams[0], ys[0], batch_size, seed, NamedSharding(mesh, P(None, "data")), **kw)
        self.shards, self.ys, self.count = shards, ys, shards.spec.count
        self.part, self.steps_per_epoch = shard_batch(batch_size, shards)
        self.n = self.part * self.steps_per_epoch * self.count

    def _read_window(self, epoch: int, w0: int, w1: int):
        rows_per_epoch = self.part * self.steps_per_epoch
        parts = []
        for p, stream, y in zip(self.shards.spec.owned, self.shards.streams or [], self.ys):
            rows = shard_order(self.shards.sizes["train"][p], self.seed, epoch, p, rows_per_epoch)
            rows = rows[w0 * self.part : w1 * self.part]
            parts.append((read_rows(stream.path, stream.columns, rows), jax.tree.map(lambda a, r=rows: a[r], y)))
        return parts

    def _place(self, window, first: int, k: int):
        a, b = first * self.part, (first + k) * self.part
        shape = self.stream.x_shape

        def steps(arr, inner):  # [rows of the window] -> [k, part, ...]
            return arr[a:b].reshape(k, self.part, *inner)

        xs = np.stack([steps(x, shape) for x, _ in window], axis=1)  # [k, owned, part, ...]
        ys = jax.tree.map(
            lambda *parts: np.stack([steps(y, y.shape[1:]) for y in parts], axis=1), *[y for _, y in window]
        )
        place = lambda arr: global_array(arr, self.sharding, 1, self.count)  # noqa: E731
        return place(xs), jax.tree.map(place, ys)

    def batch(self, args, i, shard=None):
        xs, ys = args
        pick = lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False)  # noqa: E731
        flat = lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])  # noqa: E731
        return flat(pick(xs)), jax.tree.map(lambda a: flat(pick(a)), ys)


class ShardedEvalSet(EvalSet):
    """An evaluation split as [batches, S * part, ...]: columns p*part.. of every batch are
    shard p's rows (padding weighs 0), so each device evaluates its own shards' rows."""

    def __init__(self, shards: LocalShards, split: str, batch_size: int, mesh: Mesh):
        count, sizes = shards.spec.count, shards.sizes[split]
        part = max(1, min(batch_size // count, max(sizes)))
        nb = max(1, max(-(-n // part) for n in sizes))
        weights = shards.weights(split)  # None: every real row weighs 1

        def local(arrays: list[np.ndarray]) -> np.ndarray:  # owned shards -> [nb, owned * part, ...]
            cut = [_padded(a, nb * part).reshape(nb, part, *a.shape[1:]) for a in arrays]
            return np.concatenate(cut, axis=1)

        real = weights or [np.ones(len(y), np.float32) for y in shards.y[split]]
        sharding = NamedSharding(mesh, P(None, "data"))
        self.n, self.num_batches, self.batch_size = sum(sizes), nb, part * count
        self.x = global_array(local(shards.x[split]), sharding, 1, count * part)
        self.y = global_array(local(shards.y[split]), sharding, 1, count * part)
        self.w = global_array(local([np.asarray(w, np.float32) for w in real]), sharding, 1, count * part)


def sharded_inputs(data, batch_size: int, eval_batch_size: int, seed: int, mesh: Mesh, **stream_kw):
    """(train loader, {val, test} eval sets) of a sharded data set."""
    shards = data.shards
    weights = shards.weights("train") or [None] * len(shards.y["train"])
    ys = [targets(y, w) for y, w in zip(shards.y["train"], weights)]
    if shards.streams:
        loader = ShardedStreamingLoader(shards, ys, batch_size, seed, mesh, **stream_kw)
    else:
        loader = ShardedLoader(shards, ys, batch_size, seed, mesh)
    return loader, {s: ShardedEvalSet(shards, s, eval_batch_size, mesh) for s in ("val", "test")}
