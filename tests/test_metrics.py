"""Device-side metric sums, finalized, against scikit-learn on the same predictions."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from dlexp import metrics


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=500)
    logits = rng.normal(size=(500, 4)) + 1.5 * np.eye(4)[y]
    pred = logits.argmax(1)
    w = jnp.ones(500)
    sums = metrics.classification_sums(jnp.zeros(500), jnp.asarray(logits), jnp.asarray(y), w, 4)
    m = metrics.classification_metrics({k: np.asarray(v) for k, v in sums.items()})
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    np.testing.assert_array_equal(np.asarray(sums["confusion"]), skm.confusion_matrix(y, pred, labels=range(4)))


def test_padding_weights_are_ignored():
    y = jnp.array([0, 1, 1, 0])
    logits = jnp.array([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]])
    sums = metrics.classification_sums(jnp.ones(4), logits, y, jnp.array([1.0, 1.0, 0.0, 0.0]), 2)
    m = metrics.classification_metrics({k: np.asarray(v) for k, v in sums.items()})
    assert m["accuracy"] == 1.0 and m["loss"] == 1.0


def test_regression_metrics_match_sklearn_in_original_units():
    rng = np.random.default_rng(1)
    t_raw = rng.normal(size=200) * 3 + 10
    p_raw = t_raw + rng.normal(size=200)
    mean, std = 10.0, 3.0
    sums = metrics.regression_sums(
        jnp.zeros(200),
        jnp.asarray((p_raw - mean) / std)[:, None],
        jnp.asarray((t_raw - mean) / std),
        jnp.ones(200),
        (mean, std),
    )
    m = metrics.regression_metrics({k: np.asarray(v, np.float64) for k, v in sums.items()})
    assert m["mse"] == pytest.approx(skm.mean_squared_error(t_raw, p_raw), rel=1e-4)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(t_raw, p_raw), rel=1e-4)
    assert m["r2"] == pytest.approx(skm.r2_score(t_raw, p_raw), rel=1e-3)


def _finalized(logits, y, classes=None):
    n, c = logits.shape
    sums = metrics.classification_sums(jnp.zeros(n), jnp.asarray(logits), jnp.asarray(y), jnp.ones(n), c)
    return metrics.classification_metrics({k: np.asarray(v) for k, v in sums.items()}, classes)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_per_class_metrics_and_one_vs_rest_auc_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, size=600)
    logits = rng.normal(size=(600, 4)) + 1.2 * np.eye(4)[y]
    pred = logits.argmax(1)
    m = _finalized(logits, y, classes=["a", "b", "c", "d"])
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        per_class = fn(y, pred, average=None)
        for c, v in zip("abcd", per_class):
            assert m[f"{name}/{c}"] == pytest.approx(v)
    expected = skm.roc_auc_score(y, _softmax(logits), multi_class="ovr", average="macro")
    assert m["roc_auc"] == pytest.approx(expected, abs=1e-3)  # up to the score histogram's bins


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    logits = np.stack([np.zeros(400), rng.normal(size=400) + 1.5 * y - 0.5], axis=1)
    pred = logits.argmax(1)
    m = _finalized(logits, y)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, _softmax(logits)[:, 1]), abs=1e-3)


def test_auc_counts_ties_as_half_like_sklearn():
    y = np.array([0, 0, 1, 1])
    logits = np.stack([np.zeros(4), np.array([-3.0, 0.0, 0.0, 3.0])], axis=1)  # a positive and a negative tie
    assert _finalized(logits, y)["roc_auc"] == pytest.approx(skm.roc_auc_score(y, logits[:, 1]))  # 0.875


def test_multi_output_regression_counts_every_value():
    rng = np.random.default_rng(4)
    t = rng.normal(size=(50, 3))
    p = t + rng.normal(size=(50, 3)) * 0.3
    sums = metrics.regression_sums(jnp.zeros(50), jnp.asarray(p), jnp.asarray(t), jnp.ones(50), (0.0, 1.0))
    m = metrics.regression_metrics({k: np.asarray(v, np.float64) for k, v in sums.items()})
    assert m["mse"] == pytest.approx(skm.mean_squared_error(t, p), rel=1e-4)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-4)
    assert m["r2"] == pytest.approx(skm.r2_score(t.ravel(), p.ravel()), rel=1e-3)  # pooled over the outputs


def test_auc_stays_exact_for_a_confident_model():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=300)
    margin = 8 * (rng.normal(size=300) + 2.0 * y - 1.0)  # |log-odds| up to ~30: float32 probabilities are 0 or 1
    logits = np.stack([np.zeros(300), margin], axis=1)
    assert _finalized(logits, y)["roc_auc"] == pytest.approx(skm.roc_auc_score(y, margin), abs=1e-3)
