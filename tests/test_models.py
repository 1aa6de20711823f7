"""Model output shapes, and a jitted train step that lowers the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dlexp.models import CNN, MLP
from dlexp.tasks import make_task
from dlexp.tasks.base import split_model


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("Model", [MLP, CNN])
def test_output_shape_for_any_image_size(Model, shape):
    model = Model(shape, 7, rngs=nnx.Rngs(0))
    assert model(jnp.ones((3, *shape))).shape == (3, 7)


def test_mlp_on_tabular_rows():
    model = MLP((30,), 2, hidden=[16, 8], activation="gelu", rngs=nnx.Rngs(0))
    assert model(jnp.ones((5, 30))).shape == (5, 2)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="model.activation='swishy'"):
        MLP((4,), 2, activation="swishy", rngs=nnx.Rngs(0))


def test_cnn_rejects_tabular_input():
    with pytest.raises(ValueError, match=r"needs image inputs \[H, W, C\]"):
        CNN((30,), 2, rngs=nnx.Rngs(0))


def test_dropout_is_on_in_train_and_off_in_eval():
    sm = split_model(MLP((4,), 3, hidden=[64], dropout=0.5, rngs=nnx.Rngs(0)))
    x = jnp.ones((2, 4))
    m_train = nnx.merge(sm.train_def, sm.params, sm.rest)
    m_eval = nnx.merge(sm.eval_def, sm.params, sm.rest)
    a = m_train(x, rngs=nnx.Rngs(dropout=1))
    b = m_train(x, rngs=nnx.Rngs(dropout=2))
    assert not np.allclose(a, b)
    np.testing.assert_allclose(m_eval(x), m_eval(x))


@pytest.mark.parametrize("Model,shape", [(MLP, (8, 8, 1)), (CNN, (8, 8, 1))])
def test_train_step_lowers_the_loss(Model, shape):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, *shape)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, size=64), jnp.int32)
    task = make_task("classification", num_outputs=4)
    sm = split_model(Model(shape, 4, rngs=nnx.Rngs(0)))
    tx = optax.adam(1e-2)
    state = task.init_state(sm, tx)
    step = jax.jit(task.make_train_step(sm, tx))
    losses = []
    for i in range(40):
        state, sums = step(state, x, y, jax.random.key(i))
        losses.append(float(sums["loss"]) / 64)
    assert losses[-1] < 0.5 * losses[0]
    assert int(state["step"]) == 40
