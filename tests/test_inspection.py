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
from flax import nnx
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT
from dlexp.inspection.embeddings import features_and_outputs, metadata_rows, sprite_images
from dlexp.inspection.layer_stats import grads_and_updates, update_ratios
from dlexp.models import CNN, MLP
from dlexp.tasks import Classification
from dlexp.tasks.base import split_model
from dlexp.train import run

TINY = ["model=mlp", "model.hidden=[32,16]", "trainer.steps=24", "trainer.eval_every=8", "trainer.log_every=8",
        "trainer.progress=false", "logger.console=false"]


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
    ratio = {e.step: e.value for e in acc.Scalars("train/update_ratio")}
    assert sorted(ratio) == [0, 16] and 1e-5 < ratio[16] < 1  # warmup_cosine: lr is 0 at step 0
    assert ratio[0] == 0.0
    assert all(math.isfinite(e.value) and e.value >= 0 for e in acc.Scalars("update_ratio/head/kernel"))
    assert {"config", "model"} <= {t.split("/")[0] for t in tags["tensors"]}  # text: config and model summary

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
    assert sprite[6 * 8:, 2 * 8:].max() == 0  # 50 images: 6 full rows and 2 cells; the rest stays black

    cm = np.array(summary["confusion"]["matrix"])
    assert summary["confusion"]["classes"] == list(range(10)) and cm.shape == (10, 10)
    assert cm.sum() == 269  # the test split of digits
    assert np.trace(cm) / cm.sum() == pytest.approx(summary["test"]["accuracy"])


def test_update_ratio_is_the_update_the_train_step_applies():
    model = MLP((6,), 3, hidden=(8,), rngs=nnx.Rngs(0))
    sm, task = split_model(model), Classification(num_classes=3)
    tx = optax.adam(0.01)
    state = task.init_state(sm, tx)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = np.arange(16, dtype=np.int32) % 3
    key = jax.random.key(0)
    step_fn = jax.jit(lambda p, r, o: grads_and_updates(task, sm, tx, p, r, o, x, y, key))
    grads, updates = step_fn(state["params"], state["rest"], state["opt"])
    new_state, sums = jax.jit(task.make_train_step(sm, tx))(state, x, y, key)
    applied = jax.tree.map(lambda a, b: a - b, new_state["params"], state["params"])
    assert jax.tree.all(jax.tree.map(lambda u, a: np.allclose(u, a, atol=1e-6), updates, applied))
    assert float(optax.tree.norm(grads)) == pytest.approx(float(sums["grad_norm"]), rel=1e-5)
    ratios = update_ratios(jax.device_get(state["params"]), jax.device_get(updates))
    expected = float(optax.tree.norm(applied)) / float(optax.tree.norm(state["params"]))
    assert ratios["train/update_ratio"] == pytest.approx(expected, rel=1e-4)
    k = state["params"]["head"]["kernel"]
    assert ratios["update_ratio/head/kernel"] == pytest.approx(
        float(np.linalg.norm(applied["head"]["kernel"]) / np.linalg.norm(k)), rel=1e-4)


@pytest.mark.parametrize("make", [lambda r: MLP((8, 8, 1), 4, hidden=(12, 6), rngs=r),
                                  lambda r: CNN((8, 8, 1), 4, channels=(4,), dense=(6,), rngs=r)], ids=["mlp", "cnn"])
def test_features_are_what_the_output_layer_sees(make):
    model = make(nnx.Rngs(0))
    sm = split_model(model)
    x = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
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


def test_regression_metadata_is_in_target_units():
    header, rows = metadata_rows("regression", np.array([0.0, 1.0]), np.array([[0.5], [1.0]]), None, (100.0, 10.0))
    assert header == ["target", "prediction", "abs_error"]
    assert rows == [["100", "105", "5"], ["110", "110", "0"]]


def test_tb_export_writes_every_scalar_of_every_run(compose, tmp_path):
    for name, lr in (("a", "0.001"), ("b", "0.01")):
        run(compose([*TINY, f"optimizer.lr={lr}", "trainer.steps=16"]), str(tmp_path / "runs" / name))
    out = tmp_path / "scalars.parquet"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "tb_export.py"), str(tmp_path / "runs"), "-o", str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    table = pl.read_parquet(out)
    assert table.columns == ["run", "tag", "step", "value", "wall_time"]
    assert sorted(table["run"].unique().to_list()) == ["a/tb", "b/tb"]
    loss = table.filter((pl.col("run") == "b/tb") & (pl.col("tag") == "val/loss")).sort("step")
    assert loss["step"].to_list() == [8, 16]
    jsonl = pl.read_ndjson(tmp_path / "runs" / "b" / "metrics.jsonl").filter(pl.col("val/loss").is_not_null())
    assert loss["value"].to_list() == pytest.approx(jsonl["val/loss"].to_list(), rel=1e-6)
    per_run = table.group_by("run").agg(pl.col("tag").n_unique())
    assert per_run["tag"].min() >= 20  # train/*, val/*, test/*, best/val/* of each run
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "tb_export.py"), str(tmp_path / "nope")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
