"""Inspection hooks: histograms, update ratios, the projector files, the confusion matrix,
and the scalar export, read back with TensorBoard's own reader."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import polars as pl
import pytest
from conftest import ROOT
from flax import nnx
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlexp.inspection.embeddings import features_and_outputs, metadata_rows, sprite_images
from dlexp.inspection.layer_stats import applied_update, loss_grads, update_ratios
from dlexp.models import CNN, MLP, RNN, ResNet, Transformer
from dlexp.models.split import split_model
from dlexp.tasks import Classification, Regression
from dlexp.train import run

TINY = [
    "model=mlp",
    "model.hidden=[32,16]",
    "trainer.steps=24",
    "trainer.eval_every=8",
    "trainer.log_every=8",
    "trainer.progress=false",
    "logger.console=false",
]


def test_a_run_with_inspection_writes_histograms_ratios_projector_and_confusion(compose, tmp_path):
    cfg = compose([*TINY, "logger.histograms_every=16", "logger.embeddings=true", "logger.embedding_samples=50"])
    _, summary = run(cfg, str(tmp_path))
    tb = tmp_path / "tb"
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()

    layers = ["body/layers/0/kernel", "body/layers/0/bias", "body/layers/1/kernel", "head/kernel", "head/bias"]
    for layer in layers:
        assert [e.step for e in acc.Histograms(f"params/{layer}")] == [0, 16]  # the init, then every 16 steps
        assert [e.step for e in acc.Histograms(f"grads/{layer}")] == [0, 16]
    kernel = acc.Histograms("params/body/layers/0/kernel")[0].histogram_value
    assert kernel.num == 64 * 32 and kernel.min < 0 < kernel.max
    ratio = {e.step: e.value for e in acc.Scalars("optimizer/update_ratio")}
    assert sorted(ratio) == [0, 16] and 1e-5 < ratio[16] < 1  # warmup_cosine: lr is 0 at step 0
    assert ratio[0] == 0.0
    assert all(math.isfinite(e.value) and e.value >= 0 for e in acc.Scalars("update_ratio/head/kernel"))
    assert {"config", "data", "model"} <= {t.split("/")[0] for t in tags["tensors"]}  # the texts

    emb = tb / "00024" / "val_features"
    pbtxt = (tb / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "00024/val_features/tensors.tsv"' in pbtxt and "sprite.png" in pbtxt
    feats = np.loadtxt(emb / "tensors.tsv", delimiter="\t")
    assert feats.shape == (50, 16) and (feats >= 0).all()  # the 16 relu features before the head
    meta = (emb / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "label\tpredicted\tcorrect" and len(meta) == 51
    rows = [r.split("\t") for r in meta[1:]]
    assert all((r[0] == r[1]) == (r[2] == "True") for r in rows)
    assert {r[0] for r in rows} <= {str(c) for c in range(10)}
    sprite = np.asarray(Image.open(emb / "sprite.png"))
    assert sprite.shape == (8 * 8, 8 * 8, 3)  # ceil(sqrt(50)) = 8 images a side
    assert sprite[:8].max() == 255  # each image stretched to the full grey range
    assert sprite[6 * 8 :, 2 * 8 :].max() == 0  # 50 images: 6 full rows and 2 cells; the rest stays black

    cm = np.array(summary["confusion"]["matrix"])
    assert summary["confusion"]["classes"] == list(range(10)) and cm.shape == (10, 10)
    assert cm.sum() == 269  # the test split of digits
    assert np.trace(cm) / cm.sum() == pytest.approx(summary["test"]["accuracy"])


def test_grads_and_update_ratio_are_those_of_the_train_step():
    model = MLP((6,), 3, hidden=(8,), rngs=nnx.Rngs(0))
    sm, task = split_model(model), Classification(num_classes=3)
    tx = optax.adam(0.01)
    state = task.init_state(sm, tx)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = np.arange(16, dtype=np.int32) % 3
    key = jax.random.key(0)
    train_step = jax.jit(task.make_train_step(sm, tx))
    grads = jax.jit(lambda p, r: loss_grads(task, sm, p, r, x, y, key))(state["params"], state["rest"])
    updates = jax.jit(lambda s: applied_update(train_step, s, x, y, key))(state)
    new_state, sums = train_step(state, x, y, key)
    assert float(optax.tree.norm(grads)) == pytest.approx(float(sums["grad_norm"]), rel=1e-5)
    # Adam's first step moves every weight by about lr (its update is lr * sign(grad))
    head_update = np.asarray(updates["head"]["kernel"])
    np.testing.assert_allclose(np.abs(head_update), 0.01, rtol=1e-3)
    np.testing.assert_allclose(head_update, -0.01 * np.sign(grads["head"]["kernel"]), rtol=1e-3)
    params = jax.device_get(state["params"])
    ratios = update_ratios(params, jax.device_get(updates))
    applied = jax.tree.map(np.subtract, jax.device_get(new_state["params"]), params)
    assert ratios["optimizer/update_ratio"] == pytest.approx(
        float(optax.tree.norm(applied)) / float(optax.tree.norm(params)), rel=1e-4
    )
    assert ratios["update_ratio/head/kernel"] == pytest.approx(
        0.01 * np.sqrt(head_update.size) / np.linalg.norm(params["head"]["kernel"]), rel=1e-3
    )
    assert set(ratios) == {"optimizer/update_ratio", "update_ratio/body/layers/0/kernel", "update_ratio/head/kernel"}
    after = update_ratios(jax.device_get(new_state["params"]), jax.device_get(updates))
    assert "update_ratio/head/bias" in after  # no longer all zeros


@pytest.mark.parametrize(
    "make",
    [
        lambda r: MLP((8, 8, 1), 4, hidden=(12, 6), rngs=r),
        lambda r: CNN((8, 8, 1), 4, channels=(4,), dense=(6,), rngs=r),
        lambda r: ResNet((8, 8, 1), 4, widths=(3, 6), blocks=1, rngs=r),
        lambda r: RNN((8, 8), 4, cell="lstm", hidden=6, rngs=r),
        lambda r: RNN((8, 8), 4, cell="gru", hidden=3, bidirectional=True, rngs=r),
        lambda r: Transformer((8, 8, 1), 4, dim=6, depth=1, heads=2, patch=4, dropout=0.0, rngs=r),
    ],
    ids=["mlp", "cnn", "resnet", "lstm", "bigru", "transformer"],
)
def test_features_are_what_the_output_layer_sees(make):
    model = make(nnx.Rngs(0))
    sm = split_model(model)
    x = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
    x = x.reshape(5, 8, 8) if isinstance(model, RNN) else x
    feats, out = jax.jit(lambda p, r: features_and_outputs(sm.eval_def, p, r, x))(sm.params, sm.rest)
    assert feats.shape == (5, 6) and out.shape == (5, 4)
    last = model.head if isinstance(model, MLP) else model.out
    np.testing.assert_allclose(last(feats), out, rtol=1e-5, atol=1e-6)


def test_a_model_without_features_embeds_its_outputs():
    class Plain(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(3, 2, rngs=rngs)

        def __call__(self, x):
            return self.fc(x)

    sm = split_model(Plain(nnx.Rngs(0)))
    feats, out = features_and_outputs(sm.eval_def, sm.params, sm.rest, np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(feats, out)


def test_sprites_undo_the_scaling_and_are_square():
    raw = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3, 1)  # two 2x3 grey images
    feats = [f"p{i}" for i in range(6)]
    prep = {"features": feats, "scale": "standard", "stats": {f: {"mean": 5.0, "std": 2.0} for f in feats}}
    sprites = sprite_images((raw - 5.0) / 2.0, prep)
    assert sprites.shape == (2, 1, 3, 3)  # NCHW, padded to square
    np.testing.assert_allclose(sprites[0, 0, :2, :3], raw[0, :, :, 0] / 5.0)  # per image to [0, 1]
    assert (sprites[:, :, 2, :] == 0).all()
    assert sprite_images(np.zeros((3, 7), np.float32), {}) is None  # tabular rows: no sprites


def test_projector_metadata_per_task():
    header, rows = metadata_rows(Regression(), np.array([0.0, 1.0]), np.array([[0.5], [1.0]]), None, (100.0, 10.0))
    assert header == ["target", "prediction", "abs_error"]  # in the target's own units
    assert rows == [["100", "105", "5"], ["110", "110", "0"]]
    logits = np.array([[2.0, 1.0], [0.0, 3.0]])
    header, rows = metadata_rows(Classification(num_classes=2), np.array([0, 0]), logits, ["cat", "dog"], (0, 1))
    assert header == ["label", "predicted", "correct"] and rows == [["cat", "cat", True], ["cat", "dog", False]]
    header, rows = metadata_rows(object(), np.array([1, 0]), np.zeros((2, 1)), ["cat", "dog"], (0, 1))  # e.g. a GAN
    assert header == ["label"] and rows == [["dog"], ["cat"]]


def write_run(logdir, values: dict[str, list[float]]) -> None:
    """Real event files, written as any run's writer writes them."""
    from tensorboardX import SummaryWriter

    w = SummaryWriter(logdir)
    for tag, vs in values.items():
        for step, v in enumerate(vs):
            w.add_scalar(tag, v, step * 10)
    w.close()


def test_tb_export_writes_every_scalar_of_every_run(tmp_path):
    write_run(tmp_path / "runs" / "a" / "tb", {"train/loss": [2.0, 1.5, 1.25], "val/loss": [2.5, 2.0, 1.75]})
    write_run(tmp_path / "runs" / "b" / "tb", {"train/loss": [3.0, 0.5]})
    write_run(tmp_path / "runs" / "b" / "tb" / "seed_1", {"train/loss": [4.0]})  # a nested run
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = str(ROOT / "scripts" / "tb_export.py")
    for out in (tmp_path / "scalars.parquet", tmp_path / "scalars.csv"):
        proc = subprocess.run(
            [sys.executable, script, str(tmp_path / "runs"), "-o", str(out)], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert "9 scalars, 3 runs, 2 tags" in proc.stdout
    table = pl.read_parquet(tmp_path / "scalars.parquet")
    assert table.columns == ["run", "tag", "step", "value", "wall_time"]
    assert table.select("run", "tag", "step", "value").rows() == [
        ("a/tb", "train/loss", 0, 2.0),
        ("a/tb", "train/loss", 10, 1.5),
        ("a/tb", "train/loss", 20, 1.25),
        ("a/tb", "val/loss", 0, 2.5),
        ("a/tb", "val/loss", 10, 2.0),
        ("a/tb", "val/loss", 20, 1.75),
        ("b/tb", "train/loss", 0, 3.0),
        ("b/tb", "train/loss", 10, 0.5),
        ("b/tb/seed_1", "train/loss", 0, 4.0),
    ]
    assert (table["wall_time"] > 1e9).all()
    assert pl.read_csv(tmp_path / "scalars.csv").drop("wall_time").equals(table.drop("wall_time"))
    bad = subprocess.run([sys.executable, script, str(tmp_path / "nope")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
