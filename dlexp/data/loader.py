"""Loaders: where the trainer's batches come from.

A loader gives the trainer, for each compiled call of `n` steps, a pytree of device
arrays (`call_args`), and inside the jitted call picks batch `i` out of it
(`batch`). `ResidentLoader` keeps the whole split on device and gathers rows there;
a streaming loader can hand over `n` prefetched batches instead, and the loop does
not change. The epoch order is a seeded numpy permutation (`epoch_order`), so every
loader draws the same batches for the same seed.

A batch is (x, y). When the data set has sample weights (dataset.weight), y is the
pytree {"target": y, "weight": w} (`train_targets`): every gather and copy maps over
it, so the weights travel with their rows, and the task's step unpacks them
(`dlexp.tasks.base.unpack_targets`). Without weights y is the bare array, as before.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from dlexp.data.gather import READ_ROWS
from dlexp.errors import ConfigError


def train_targets(data):
    """The train loader's y: data.y["train"], paired with its sample weights when there are any."""
    return targets(data.y["train"], data.sample_weights("train"))


def targets(y: np.ndarray, w: np.ndarray | None):
    """A loader's y: the targets, or {"target", "weight"} when rows carry sample weights."""
    return y if w is None else {"target": y, "weight": w}


def batch_shape(tree, batch: int):
    """Shape and dtype of one batch of every leaf of `tree` (arrays [n, ...]), for tracing without data."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch, *a.shape[1:]), a.dtype), tree)


def epoch_order(n: int, seed: int, epoch: int, batch_size: int) -> np.ndarray:
    """The row order of one epoch, trimmed to whole batches."""
    steps = n // batch_size
    return np.random.default_rng([seed, epoch]).permutation(n)[: steps * batch_size].astype(np.int32)


class ResidentLoader:
    """A training split on device plus the per-epoch order to draw batches in."""

    copy_axes = None  # one run: nothing to vmap over

    def __init__(self, x: np.ndarray, y, batch_size: int, seed: int, sharding):
        self.n = int(x.shape[0])
        self.batch_size = batch_size
        self.seed = seed
        self.sharding = sharding
        self.x = jax.device_put(x, sharding)
        self.y = jax.device_put(y, sharding)
        self.steps_per_epoch = self.n // batch_size
        self._epoch, self._order = None, None
        self._starts: dict[int, jax.Array] = {}  # device scalars, made once: a host int is re-sent every call

    def example(self):
        """Shape and dtype of one batch (x, y), for tracing without data."""
        return batch_shape(self.x, self.batch_size), batch_shape(self.y, self.batch_size)

    def call_args(self, epoch: int, start: int, n: int):
        """Device arrays for steps start..start+n-1 of `epoch` (only the order is new per epoch)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = jax.device_put(epoch_order(self.n, self.seed, epoch, self.batch_size), self.sharding)
        if start not in self._starts:
            self._starts[start] = jax.device_put(np.int32(start), self.sharding)
        return (self.x, self.y, self._order, self._starts[start])

    def batch(self, args, i, shard=None):
        """Inside jit: batch i of a call (its rows gathered where `shard` puts them)."""
        x, y, order, start = args
        return take_batch(x, y, order, start + i, self.batch_size, shard)

    def close(self) -> None:
        """Nothing to stop (a `StreamingLoader` stops its reader thread)."""


class CopiesLoader:
    """One resident training split, read in its own order by each copy (its seed): the
    order of copy s is the order a single run with seed s draws."""

    copy_axes = (None, None, 0, None)  # x, y and start shared; the order per copy

    def __init__(self, base: ResidentLoader, seeds, sharding):
        self.base, self.seeds, self.sharding = base, list(seeds), sharding
        self.n, self.batch_size, self.steps_per_epoch = base.n, base.batch_size, base.steps_per_epoch
        self._epoch, self._orders = None, None

    def example(self):
        return self.base.example()

    def call_args(self, epoch: int, start: int, n: int):
        if epoch != self._epoch:
            orders = np.stack([epoch_order(self.n, s, epoch, self.batch_size) for s in self.seeds])
            self._epoch, self._orders = epoch, jax.device_put(orders, self.sharding)
        x, y, _, start_ = self.base.call_args(epoch, start, n)
        return (x, y, self._orders, start_)

    def batch(self, args, i, shard=None):
        return self.base.batch(args, i, shard)

    def close(self) -> None:
        """Nothing to stop."""


def take_batch(x, y, order, i, batch_size: int, shard=None):
    """Inside jit: rows order[i*B:(i+1)*B] of the resident arrays.

    With `shard` (the batch sharding of a mesh) the row indices are split over the
    devices first, so each device gathers only its own rows from its copy of the data.
    """
    idx = jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
    if shard is not None:
        idx = jax.lax.with_sharding_constraint(idx, shard)
    return jnp.take(x, idx, axis=0), take_rows(y, idx)


def take_rows(y, idx):
    """Inside jit: rows `idx` of y (the targets, or targets and weights)."""
    return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), y)


def make_loader(
    data,
    batch_size: int,
    seed: int,
    sharding,
    steps_per_call: int = 1,
    buffer_mb: float = 256.0,
    copies: tuple[list[int], Any] | None = None,
):
    """The train loader a data set asks for: streamed when its train split stays on disk.
    `copies`: (seeds, their sharding): one resident split, read in each seed's order by its copy."""
    if copies is not None:
        if data.stream is not None:
            raise ConfigError(
                "trainer.seeds trains copies on a resident train split; this data set streams it "
                "from disk (dataset.stream): unset one of the two"
            )
        base = ResidentLoader(data.x["train"], train_targets(data), batch_size, seed, sharding)
        return CopiesLoader(base, *copies)
    if data.stream is not None:
        return StreamingLoader(data.stream, train_targets(data), batch_size, seed, sharding, steps_per_call, buffer_mb)
    return ResidentLoader(data.x["train"], train_targets(data), batch_size, seed, sharding)


class StreamingLoader:
    """The train split read from its prepared Parquet file, in the epoch order.

    The epoch order is cut into windows of whole calls that fit in `buffer_mb`; a
    background thread reads each window's rows with Polars (`collect_batches`, one
    pass over the file per window), cuts it into calls of `steps_per_call` batches and
    puts them on device ahead of the loop (a queue of `prefetch` calls). Memory stays
    at about one window plus the queue, whatever the file's size.
    """

    copy_axes = None

    def __init__(
        self,
        stream,
        y,
        batch_size: int,
        seed: int,
        sharding,
        steps_per_call: int = 1,
        buffer_mb: float = 256.0,
        prefetch: int = 2,
    ):
        self.stream, self.y = stream, y
        self.n, self.batch_size, self.seed, self.sharding = stream.rows, batch_size, seed, sharding
        self.steps_per_epoch = self.n // batch_size
        self.chunk = max(1, int(steps_per_call))
        row_bytes = 4 * int(np.prod(stream.x_shape))
        fit = int(buffer_mb * 2**20) // (row_bytes * batch_size)  # steps whose rows fit the buffer
        self.window_steps = max(self.chunk, fit // self.chunk * self.chunk)
        self.prefetch = prefetch
        self._epoch_order: tuple[int | None, np.ndarray] = (None, np.zeros(0, np.int32))
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None

    def example(self):
        x = jax.ShapeDtypeStruct((self.batch_size, *self.stream.x_shape), np.float32)
        return x, batch_shape(self.y, self.batch_size)

    def call_args(self, epoch: int, start: int, n: int):
        """The next prefetched call; a jump (a resumed run) restarts the reader there."""
        item = self._next() if self._queue is not None else None
        if item is None or item[:2] != (epoch, start) or item[2].shape[0] < n:
            self._start(epoch, start)
            item = self._next()
        _, _, xs, ys = item
        return (xs[:n], jax.tree.map(lambda a: a[:n], ys)) if xs.shape[0] > n else (xs, ys)

    def _next(self):
        assert self._queue is not None  # started by call_args
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def batch(self, args, i, shard=None):
        """Inside jit: batch i of a call (already on device; `shard` is the trainer's to apply)."""
        xs, ys = args
        pick = lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False)  # noqa: E731
        return pick(xs), jax.tree.map(pick, ys)

    def close(self) -> None:
        """Stops the reader thread (the trainer calls this when the loop ends)."""
        if self._stop is not None and self._thread is not None and self._queue is not None:
            self._stop.set()
            while self._thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._queue = self._thread = self._stop = None

    def _start(self, epoch: int, start: int) -> None:
        self.close()
        self._queue, self._stop = queue.Queue(maxsize=self.prefetch), threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(epoch, start, self._stop, self._queue), daemon=True)
        self._thread.start()

    def _produce(self, epoch: int, start: int, stop: threading.Event, out: queue.Queue) -> None:
        try:
            while not stop.is_set():
                for w0 in range(start, self.steps_per_epoch, self.window_steps):
                    w1 = min(w0 + self.window_steps, self.steps_per_epoch)
                    window = self._read_window(epoch, w0, w1)
                    for c in range(w0, w1, self.chunk):
                        k = min(self.chunk, w1 - c)
                        xs, ys = self._place(window, c - w0, k)
                        while not stop.is_set():
                            try:
                                out.put((epoch, c, xs, ys), timeout=0.1)
                                break
                            except queue.Full:
                                pass
                        if stop.is_set():
                            return
                epoch, start = epoch + 1, 0
        except BaseException as e:  # handed to the loop, which raises it
            out.put(e)

    def _read_window(self, epoch: int, w0: int, w1: int):
        """Rows of steps w0..w1-1 of `epoch`: (x, y) in batch order."""
        B = self.batch_size
        rows = self._order(epoch)[w0 * B : w1 * B]
        return read_rows(self.stream.path, self.stream.columns, rows), jax.tree.map(lambda y: y[rows], self.y)

    def _order(self, epoch: int) -> np.ndarray:
        """The epoch's order, drawn once per epoch (the reader thread's own)."""
        if self._epoch_order[0] != epoch:
            self._epoch_order = (epoch, epoch_order(self.n, self.seed, epoch, self.batch_size))
        return self._epoch_order[1]

    def _place(self, window, first: int, k: int):
        """Steps first..first+k-1 of a window on device, as [k, B, ...] arrays."""
        xw, yw = window
        B, a, b = self.batch_size, first * self.batch_size, (first + k) * self.batch_size
        xs = jax.device_put(xw[a:b].reshape(k, B, *self.stream.x_shape), self.sharding)
        ys = jax.device_put(jax.tree.map(lambda y: y[a:b].reshape(k, B, *y.shape[1:]), yw), self.sharding)
        return xs, ys


def read_rows(path: str, columns, rows: np.ndarray, chunk_rows: int = READ_ROWS) -> np.ndarray:
    """float32 [len(rows), len(columns)]: the given rows of a Parquet file, in the given
    order, read in one streaming pass (only the batches holding wanted rows are gathered)."""
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    out = np.empty((len(rows), len(columns)), np.float32)
    offset = 0
    for df in pl.scan_parquet(path).select(list(columns)).collect_batches(chunk_size=chunk_rows):
        lo, hi = np.searchsorted(wanted, [offset, offset + df.height])
        if hi > lo:
            out[order[lo:hi]] = df[wanted[lo:hi] - offset].to_numpy()
        offset += df.height
    return out


def eval_sets(data, batch_size: int, sharding, multiple: int = 1) -> dict[str, EvalSet]:
    """The val and test splits on device, in whole batches per device, with their sample weights."""
    return {
        s: EvalSet(data.x[s], data.y[s], batch_size, sharding, multiple=multiple, weights=data.sample_weights(s))
        for s in ("val", "test")
    }


class EvalSet:
    """An evaluation split on device as [batches, B, ...] with a weight per row: 0 for the
    padding, 1 for a real row, or the row's sample weight (`weights`, from dataset.weight)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        sharding,
        multiple: int = 1,
        weights: np.ndarray | None = None,
    ):
        n = int(x.shape[0])
        b = max(1, min(batch_size, n))
        b = -(-b // multiple) * multiple  # whole batches per device
        nb = -(-n // b)
        pad = nb * b - n
        real = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
        w = np.concatenate([real, np.zeros(pad, np.float32)])
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
        self.n, self.num_batches, self.batch_size = n, nb, b
        self.x = jax.device_put(x.reshape(nb, b, *x.shape[1:]), sharding)
        self.y = jax.device_put(y.reshape(nb, b, *y.shape[1:]), sharding)
        self.w = jax.device_put(w.reshape(nb, b), sharding)

    def example(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        """Shape and dtype of one batch (x, y, w), for tracing the eval step without data."""
        return tuple(jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in (self.x, self.y, self.w))
