"""The judge: a small classifier of the run's own labelled data whose penultimate features
and predictions measure generated samples (`frechet.py`).

`quality.judge=auto` trains one at the start of a generative run (a CNN for images, an MLP
for rows; a few hundred steps, seconds on a CPU), seeded by the run's seed; a run dir of a
dlexp classification run on the same data reuses that run's best state instead. The
reference Gaussian is the judge's features of the train split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlexp.data.dataset import Dataset
from dlexp.errors import ConfigError
from dlexp.inspection.embeddings import features_and_outputs
from dlexp.models.split import SplitModel, split_model
from dlexp.quality.frechet import feature_sums, gaussian

log = logging.getLogger("dlexp")
BATCH = 128


@dataclass(frozen=True, eq=False)
class Judge:
    """A trained classifier as pure data, and its features' Gaussian on the train split."""

    model: SplitModel
    reference: tuple[np.ndarray, np.ndarray]  # (mean, covariance) of train features
    num_classes: int
    accuracy: float  # on the val split: how far its verdicts can be trusted
    source: str

    def sums(self, x, weights) -> dict:
        """Pure (jit-able): `feature_sums` of a batch of real or generated examples."""
        m = self.model
        feats, logits = features_and_outputs(m.eval_def, m.params, m.rest, x.astype(jnp.float32))
        return feature_sums(feats, jax.nn.softmax(logits, axis=-1), weights)


def usable(data: Dataset) -> str | None:
    """Why a judge cannot be had for this data (None: it can)."""
    if data.task != "classification" or not data.classes:
        return "the data set has no class labels"
    if data.x.get("train") is None:
        return "the train split is streamed"
    if data.shards is not None and not data.shards.spec.all_local:
        return "the data is split over processes"
    return None


def train_judge(data: Dataset, seed: int, steps: int, cache_dir: str | None = None) -> Judge:
    """A CNN (images) or MLP (rows) trained on the train split with Adam; kept in the cache
    under a digest of the rows, seed and steps, so a sweep's runs share one judge."""
    from dlexp.build import build_model

    image = len(data.input_shape) == 3
    node = (
        {"_target_": "dlexp.models.CNN", "channels": [16, 32], "dense": [64], "dropout": 0.0}
        if image
        else {"_target_": "dlexp.models.MLP", "hidden": [128, 64], "dropout": 0.0}
    )
    model = build_model(node, in_shape=data.input_shape, num_outputs=data.num_outputs, seed=seed)
    sm = split_model(model)
    x, y = np.asarray(data.x["train"]), np.asarray(data.y["train"])
    digest = hashlib.sha1(x.tobytes() + y.tobytes() + json.dumps([node, seed, steps]).encode()).hexdigest()
    path = os.path.join(cache_dir, "judges", f"{digest}.npz") if cache_dir else None
    if path and os.path.exists(path):
        with np.load(path) as saved:
            leaves = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        params = jax.tree.unflatten(jax.tree.structure(sm.params), leaves)
        source = f"trained for {steps} steps (cached)"
    else:
        params = _fit(sm, x, y, seed, steps)
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            np.savez(path + ".tmp.npz", *[np.asarray(v) for v in jax.tree.leaves(params)])
            os.replace(path + ".tmp.npz", path)
        source = f"trained for {steps} steps"
    trained = SplitModel(sm.train_def, sm.eval_def, params, sm.rest, sm.takes_rngs)
    return _finish(trained, data, source)


def _fit(sm: SplitModel, x: np.ndarray, y: np.ndarray, seed: int, steps: int):
    tx = optax.adam(1e-3)

    @jax.jit
    def step(params, opt, xb, yb):
        def loss_fn(p):
            _, logits = features_and_outputs(sm.train_def, p, sm.rest, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    params, opt = sm.params, tx.init(sm.params)
    rng = np.random.default_rng(seed)
    order = np.empty(0, np.int64)
    for _ in range(steps):
        if len(order) < BATCH:
            order = np.concatenate([order, rng.permutation(len(x))])
        take, order = order[:BATCH], order[BATCH:]
        params, opt = step(params, opt, x[take], y[take])
    return params


def load_judge(run_dir: str, data: Dataset) -> Judge:
    """The best state of a dlexp classification run on data of the same shape and classes."""
    from dlexp.saved_run import load_run

    run = load_run(run_dir)
    same = (
        run.prep.task == "classification"
        and list(run.prep.classes or []) == list(data.classes or [])
        and run.prep.scale == data.prep.get("scale")
    )
    if not same:
        raise ConfigError(
            f"quality.judge={run_dir} is not a classification run over this data's classes ({data.classes}) "
            f"scaled as it is (dataset.scale={data.prep.get('scale')}); name a run trained on the same data, "
            "or use quality.judge=auto"
        )
    sm, _, _ = run.model_and_task(tuple(data.input_shape))
    return _finish(sm, data, f"the best state of {run_dir}")


def _finish(sm: SplitModel, data: Dataset, source: str) -> Judge:
    """The judge with its reference Gaussian (train features) and val accuracy."""
    placeholder = Judge(sm, (np.zeros(0), np.zeros((0, 0))), data.num_outputs, 0.0, source)
    measure = jax.jit(placeholder.sums)
    logits_of = jax.jit(lambda x: features_and_outputs(sm.eval_def, sm.params, sm.rest, x)[1])
    train = _added([measure(xb, np.ones(len(xb), np.float32)) for xb in _batches(data.x["train"])])
    val_x = data.x["val"]
    correct = sum(
        int((np.asarray(logits_of(xb)).argmax(-1) == yb).sum())
        for xb, yb in zip(_batches(val_x), _batches(data.y["val"]))
    )
    accuracy = correct / max(len(val_x), 1)
    log.info("quality judge: %s, val accuracy %.3f", source, accuracy)
    return Judge(sm, gaussian(train), data.num_outputs, accuracy, source)


def _batches(a: Any, size: int = 1024):
    a = np.asarray(a)
    return [a[i : i + size] for i in range(0, len(a), size)]


def _added(parts: list[dict]) -> dict:
    return jax.tree.map(lambda *v: sum(np.asarray(x, np.float64) for x in v), *parts)
