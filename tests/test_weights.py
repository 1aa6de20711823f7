"""Sample weights (dataset.weight): the train loss is sum(w * loss) / sum(w) per batch, the
evaluation sums are weighted, the weights travel with their rows through every loader,
and bad weights are one clear error naming the column."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import polars as pl
import pytest
from conftest import ROOT, read_json
from flax import nnx
from jax.sharding import SingleDeviceSharding
from sklearn import metrics as skm

from dlexp.data.dataset import SPLITS, Dataset
from dlexp.data.loader import EvalSet, StreamingLoader, make_loader
from dlexp.data.table import table
from dlexp.errors import DataError
from dlexp.models import GAN
from dlexp.models.split import split_model
from dlexp.tasks import make_task

DEV = SingleDeviceSharding(jax.devices()[0])
LR = 0.5


def toy(n=12, seed=0):
    """x [n, 3], binary labels, weights in [0, 3) with one 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    labels = (rng.uniform(size=n) < 0.4).astype(np.int32)
    w = rng.uniform(0, 3, n).astype(np.float32)
    w[0] = 0.0
    return x, labels, w


def first_step(task, x, y, sm=None):
    """(params before, params after, metric sums) of one SGD step of `sm` (default: a linear model, seed 0)."""
    sm = sm or split_model(nnx.Linear(x.shape[1], 2, rngs=nnx.Rngs(0)))
    tx = optax.sgd(LR)
    state, sums = jax.jit(task.make_train_step(sm, tx))(task.init_state(sm, tx), x, y, jax.random.key(0))
    return sm.params, state["params"], jax.device_get(sums)


def logits_of(params, x):
    return x @ params["kernel"] + params["bias"]


def assert_tree_close(a, b, **kw):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **kw)


def test_the_train_loss_is_the_weighted_mean_and_does_not_depend_on_the_weights_scale():
    x, labels, w = toy()
    task = make_task("classification", num_outputs=2)
    before, after, sums = first_step(task, x, {"target": labels, "weight": w})

    def by_hand(params):
        losses = optax.softmax_cross_entropy_with_integer_labels(logits_of(params, x), labels)
        return jnp.sum(w * losses) / jnp.sum(w)

    loss, grads = jax.value_and_grad(by_hand)(before)
    assert task.finalize(sums)["loss"] == pytest.approx(float(loss), rel=1e-6)
    assert float(sums["count"]) == pytest.approx(float(w.sum()), rel=1e-6)
    assert_tree_close(after, jax.tree.map(lambda p, g: p - LR * g, before, grads), rtol=1e-5, atol=1e-6)
    _, scaled, _ = first_step(task, x, {"target": labels, "weight": 1000 * w})  # normalized: same update
    assert_tree_close(scaled, after, rtol=1e-5, atol=1e-6)
    _, plain, _ = first_step(task, x, labels)  # and the weights do change it
    assert not np.allclose(np.asarray(plain["kernel"]), np.asarray(after["kernel"]), atol=1e-4)


def dataset(x, y, w=None):
    """Every split holds the same rows (only train matters here)."""
    return Dataset(
        x={s: x for s in SPLITS},
        y={s: y for s in SPLITS},
        task="classification",
        classes=[0, 1],
        weights=None if w is None else {s: w for s in SPLITS},
    )


def loader_step(task, data):
    """Params after one full-batch step, the batch drawn by the data set's own loader."""
    sm = split_model(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    tx = optax.sgd(LR)
    n = data.sizes()["train"]
    loader = make_loader(data, n, 0, DEV)
    step = task.make_train_step(sm, tx)

    @jax.jit
    def go(state, args):
        return step(state, *loader.batch(args, 0), jax.random.key(0))

    state, sums = go(task.init_state(sm, tx), loader.call_args(0, 0, 1))
    return state["params"], task.finalize(jax.device_get(sums))["loss"]


def test_weight_two_is_the_same_first_step_as_duplicating_the_rows():
    x, labels, _ = toy(16, seed=1)
    a = labels == 1
    task = make_task("classification", num_outputs=2)
    dup_params, dup_loss = loader_step(task, dataset(np.concatenate([x, x[a]]), np.concatenate([labels, labels[a]])))
    w = np.where(a, 2.0, 1.0).astype(np.float32)
    w_params, w_loss = loader_step(task, dataset(x, labels, w))
    assert w_loss == pytest.approx(dup_loss, rel=1e-5)
    assert_tree_close(w_params, dup_params, rtol=1e-5, atol=1e-6)
    plain_params, plain_loss = loader_step(task, dataset(x, labels))
    assert plain_loss != pytest.approx(dup_loss, rel=1e-3)  # a test that fails if the weights are ignored


def eval_metrics(task, x, y, w):
    """The trainer's evaluation of a linear model (seed 0): EvalSet batches of 4, the last padded."""
    sm = split_model(nnx.Linear(3, 2 if task.name == "classification" else 1, rngs=nnx.Rngs(0)))
    es = EvalSet(x, y, 4, DEV, weights=w)
    step = jax.jit(task.make_eval_step(sm))
    parts = [step(sm.params, sm.rest, es.x[b], es.y[b], es.w[b]) for b in range(es.num_batches)]
    return task.finalize(jax.device_get(jax.tree.map(lambda *a: sum(a), *parts))), sm.params


def test_weighted_eval_metrics_match_hand_computed_and_scikit_learn():
    x, labels, w = toy(10)
    task = make_task("classification", num_outputs=2)
    m, params = eval_metrics(task, x, labels, w)
    logits = logits_of(params, x)
    pred = np.asarray(logits.argmax(1))
    assert m["accuracy"] == pytest.approx(float((w * (pred == labels)).sum() / w.sum()), rel=1e-6)
    ce = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    assert m["loss"] == pytest.approx(float((w * ce).sum() / w.sum()), rel=1e-5)
    assert m["f1"] == pytest.approx(skm.f1_score(labels, pred, average="macro", sample_weight=w), rel=1e-5)
    tiny, _ = eval_metrics(task, x, labels, w / 1000)  # weights summing to < 1 are still a weighted mean
    assert tiny["accuracy"] == pytest.approx(m["accuracy"], rel=1e-5)
    assert tiny["loss"] == pytest.approx(m["loss"], rel=1e-4)

    target = x[:, 0] + 0.3 * x[:, 1]
    reg = make_task("regression", num_outputs=1)
    r, params = eval_metrics(reg, x, target.astype(np.float32), w / 1000)
    pred = np.asarray(x @ params["kernel"] + params["bias"]).ravel()
    assert r["mse"] == pytest.approx(float((w * (pred - target) ** 2).sum() / w.sum()), rel=1e-5)
    assert r["r2"] == pytest.approx(skm.r2_score(target, pred, sample_weight=w), rel=1e-4)


def write_csv(tmp_path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    label = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    w = rng.uniform(0, 3, n)
    path = tmp_path / "weighted.csv"
    pl.DataFrame({**{f"f{i}": x[:, i] for i in range(4)}, "label": label, "w": w}).write_csv(path)
    return str(path)


def test_a_run_with_a_weight_column_trains_and_reports_weighted_metrics(compose, tmp_path):
    from dlexp.train import run

    path = write_csv(tmp_path)
    cfg = compose(
        [
            "model=mlp",
            "model.hidden=[16]",
            "dataset=csv",
            f"dataset.path={path}",
            "dataset.label=label",
            "+dataset.weight=w",
            "trainer.steps=12",
            "trainer.batch_size=32",
            "trainer.eval_every=6",
            "trainer.steps_per_call=3",
            "trainer.progress=false",
            "logger=none",
        ]
    )
    value, summary = run(cfg, str(tmp_path / "run"))
    assert summary["status"] == "completed" and np.isfinite(value)
    assert read_json(tmp_path / "run" / "prep.json")["weight"] == "w"
    cm = np.array(summary["confusion"]["matrix"])  # summed test weights, not row counts
    assert summary["confusion"]["weighted"] and cm.sum() != pytest.approx(round(cm.sum()), abs=1e-3)
    assert summary["test"]["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), rel=1e-5)


def test_streamed_batches_carry_the_same_weights_as_resident_ones(tmp_path):
    kw = dict(path=write_csv(tmp_path, n=400), label="label", weight="w", cache_dir=str(tmp_path), seed=1)
    resident, streamed = table(stream=False, **kw), table(stream=True, **kw)
    np.testing.assert_array_equal(streamed.weights["train"], resident.weights["train"])
    a = make_loader(resident, 32, 3, DEV)
    b = make_loader(streamed, 32, 3, DEV, steps_per_call=4, buffer_mb=0.002)
    assert isinstance(b, StreamingLoader)
    ra, rb = a.call_args(1, 4, 4), b.call_args(1, 4, 4)
    for i in range(4):
        (xa, ya), (xb, yb) = a.batch(ra, i), b.batch(rb, i)
        assert set(ya) == {"target", "weight"}
        for u, v in zip(jax.tree.leaves((xa, ya)), jax.tree.leaves((xb, yb))):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    b.close()


PMAP = r"""
import json, jax, numpy as np, optax
from flax import nnx
from dlexp.tasks import make_task
from dlexp.models.split import split_model
from dlexp.parallel import split_for_devices
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 3)).astype(np.float32)
y = {"target": (rng.uniform(size=16) < 0.5).astype(np.int32), "weight": rng.uniform(0, 3, 16).astype(np.float32)}
y["weight"][:4] = 0.0  # one device's rows weigh nothing: a per-device normalization would be wrong
task = make_task("classification", num_outputs=2)
sm = split_model(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
tx = optax.sgd(0.5)
state = task.init_state(sm, tx)
one = jax.jit(task.make_train_step(sm, tx))(state, x, y, jax.random.key(0))[0]["params"]
step = task.make_train_step(sm, tx, axis_name="data")
def replica(state, x, y):
    return step(state, split_for_devices(x, 4), split_for_devices(y, 4), jax.random.key(0))[0]["params"]
copies = jax.tree.map(lambda a: np.broadcast_to(a, (4, *np.shape(a))), state)  # one per device, as the trainer
many = jax.pmap(replica, axis_name="data", in_axes=(0, None, None), devices=jax.devices()[:4])(copies, x, y)
print("RESULT" + json.dumps(max(float(np.abs(np.asarray(a) - np.asarray(b[0])).max())
                                for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many)))))
"""


def test_pmap_replicas_normalize_by_the_global_weight_sum():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PMAP], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1]
    assert json.loads(line[len("RESULT") :]) < 1e-5


def test_bad_weights_are_one_clear_error_naming_the_column(tmp_path):
    def frame(w):
        return pl.DataFrame(
            {"a": np.arange(10.0), "label": [0, 1] * 5, "w": w, "s": ["train"] * 6 + ["val"] * 2 + ["test"] * 2}
        )

    def load(w, name):
        path = tmp_path / name
        frame(w).write_parquet(path)
        return table(path=str(path), label="label", weight="w", split="column", split_column="s")

    with pytest.raises(DataError, match=r"weight column 'w' \(dataset.weight\) holds 1 negative or non-finite"):
        load([1.0] * 9 + [-1.0], "negative.parquet")
    with pytest.raises(DataError, match=r"weight column 'w' \(dataset.weight\) holds 1 negative or non-finite"):
        load([1.0, float("inf")] + [1.0] * 8, "inf.parquet")
    with pytest.raises(DataError, match=r"weight column 'w' \(dataset.weight\) is 0 for every train row"):
        load([0.0] * 6 + [1.0] * 4, "zero.parquet")
    with pytest.raises(DataError, match=r"weight column 'w' holds 2 nulls"):
        load([1.0, None, None] + [1.0] * 7, "nulls.parquet")
    with pytest.raises(DataError, match=r"weight column 'w' \(dataset.weight\) must be numeric"):
        load(["heavy"] * 10, "text.parquet")
    assert load([0.0] * 3 + [1.0] * 7, "some_zero.parquet").weights["train"].tolist() == [0, 0, 0, 1, 1, 1]


def test_the_gan_refuses_sample_weights_and_the_autoencoder_uses_them():
    x = np.random.default_rng(0).uniform(size=(8, 4)).astype(np.float32)
    y = {"target": np.zeros(8, np.int32), "weight": np.arange(8, dtype=np.float32)}
    model = GAN((4,), latent=2, g_widths=[8], d_widths=[8], rngs=nnx.Rngs(0))
    task = make_task("classification", num_outputs=2, model=model)
    sm, tx = split_model(model), optax.sgd(0.1)
    with pytest.raises(DataError, match="dataset.weight"):
        jax.eval_shape(task.make_train_step(sm, tx), task.init_state(sm, tx), x, y, jax.random.key(0))

    from dlexp.models import Autoencoder

    model = Autoencoder((4,), hidden=[8], latent=2, rngs=nnx.Rngs(0))
    task = make_task("classification", num_outputs=2, model=model)
    sm = split_model(model)
    losses = task.loss(jax.jit(lambda p, r: nnx.merge(sm.train_def, p, r)(x))(sm.params, sm.rest), x)
    _, _, sums = first_step(task, x, y, sm)
    w = y["weight"]
    assert task.finalize(sums)["loss"] == pytest.approx(float((w * losses).sum() / w.sum()), rel=1e-5)
