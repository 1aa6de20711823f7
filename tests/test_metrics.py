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
        jnp.zeros(200), jnp.asarray((p_raw - mean) / std)[:, None], jnp.asarray((t_raw - mean) / std),
        jnp.ones(200), (mean, std),
    )
    m = metrics.regression_metrics({k: np.asarray(v, np.float64) for k, v in sums.items()})
    assert m["mse"] == pytest.approx(skm.mean_squared_error(t_raw, p_raw), rel=1e-4)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(t_raw, p_raw), rel=1e-4)
    assert m["r2"] == pytest.approx(skm.r2_score(t_raw, p_raw), rel=1e-3)
