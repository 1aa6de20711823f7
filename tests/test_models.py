"""Model output shapes, and a jitted train step that lowers the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dlexp.models import CNN, GAN, MLP, RNN, Autoencoder, ResNet, Transformer
from dlexp.models.split import split_model
from dlexp.tasks import make_task


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("Model", [MLP, CNN])
def test_output_shape_for_any_image_size(Model, shape):
    model = Model(shape, 7, rngs=nnx.Rngs(0))
    assert forward(model, jnp.ones((3, *shape))).shape == (3, 7)


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


TINY = {  # small enough to compile and train in seconds
    "mlp": (MLP, {}),
    "cnn": (CNN, {}),
    "resnet": (ResNet, dict(widths=[8, 16], blocks=1)),
    "lstm": (RNN, dict(cell="lstm", hidden=16)),
    "gru_bidirectional": (RNN, dict(cell="gru", hidden=16, layers=2, bidirectional=True)),
    "transformer_patches": (Transformer, dict(dim=16, depth=1, heads=2, patch=4, dropout=0.0)),
}
SEQUENCE_MODELS = {  # on [time, features] inputs
    "lstm_mean": (RNN, dict(hidden=16, readout="mean")),
    "transformer_tokens": (Transformer, dict(dim=16, depth=1, heads=2, pool="mean", dropout=0.0)),
}


@pytest.mark.parametrize("name", list(TINY))
def test_new_models_on_colour_images_of_another_size(name):
    Model, kw = TINY[name]  # 8x8x1 is covered by the training test below
    model = Model((16, 12, 3), 5, rngs=nnx.Rngs(0), **kw)
    model.eval()
    assert forward(model, jnp.ones((2, 16, 12, 3))).shape == (2, 5)


@pytest.mark.parametrize("name", list(SEQUENCE_MODELS))
@pytest.mark.parametrize("shape", [(12,), (12, 3)])
def test_sequence_models_on_series_windows(name, shape):
    Model, kw = SEQUENCE_MODELS[name]
    assert forward(Model(shape, 4, rngs=nnx.Rngs(0), **kw), jnp.ones((2, *shape))).shape == (2, 4)


def forward(model, x, method="__call__"):
    """The model's output under one compiled call (faster than op-by-op on CPU)."""
    return nnx.jit(lambda m, x: getattr(m, method)(x))(model, x)


def test_generative_models_shapes():
    for shape in [(8, 8, 1), (6, 6, 1), (13,)]:  # 6x6: the generator's 8x8 output is cropped
        gan = GAN(shape, latent=6, g_widths=[8, 4], d_widths=[4, 8], rngs=nnx.Rngs(0))
        assert forward(gan, jnp.ones((3, 6)), "generate").shape == (3, *shape)
        assert forward(gan, jnp.ones((3, *shape))).shape == (3, 1)
    vae = Autoencoder((8, 8, 1), latent=4, variational=True, rngs=nnx.Rngs(0))
    out = vae(jnp.ones((3, 8, 8, 1)), rngs=nnx.Rngs(dropout=0))
    assert out["recon"].shape == (3, 8, 8, 1) and out["kl_dims"].shape == out["code"].shape == (3, 4)


def test_bad_model_options_are_named():
    with pytest.raises(ValueError, match="model.cell='rnn'"):
        RNN((8,), 2, cell="rnn", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model.patch=3 must divide"):
        Transformer((8, 8, 1), 2, patch=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model=resnet needs image inputs"):
        ResNet((30,), 2, rngs=nnx.Rngs(0))


def test_batch_norm_uses_batch_statistics_in_train_and_running_averages_in_eval():
    sm = split_model(ResNet((8, 8, 1), 3, widths=[4], blocks=1, rngs=nnx.Rngs(0)))
    x = jnp.asarray(np.random.default_rng(0).normal(2.0, 3.0, size=(16, 8, 8, 1)), jnp.float32)
    m_train = nnx.merge(sm.train_def, sm.params, sm.rest)
    m_train(x)
    rest = nnx.to_pure_dict(nnx.split(m_train, nnx.Param, ...)[2])
    assert not np.allclose(rest["stem"]["layers"][1]["mean"], sm.rest["stem"]["layers"][1]["mean"])  # updated
    m_eval = nnx.merge(sm.eval_def, sm.params, rest)
    before = jax.tree.map(np.asarray, rest)
    np.testing.assert_allclose(m_eval(x[:1]), m_eval(x)[:1], rtol=1e-4, atol=1e-5)  # no batch dependence
    after = nnx.to_pure_dict(nnx.split(m_eval, nnx.Param, ...)[2])
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, after))  # eval leaves them


@pytest.mark.parametrize("name", list(TINY))
def test_train_step_lowers_the_loss(name):
    Model, kw = TINY[name]
    shape = (8, 8, 1)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, *shape)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, size=64), jnp.int32)
    task = make_task("classification", num_outputs=4)
    sm = split_model(Model(shape, 4, rngs=nnx.Rngs(0), **kw))
    tx = optax.adam(1e-2)
    state = task.init_state(sm, tx)
    step = jax.jit(task.make_train_step(sm, tx))
    losses = []
    for i in range(40):
        state, sums = step(state, x, y, jax.random.key(i))
        losses.append(float(sums["loss"]) / 64)
    assert losses[-1] < 0.5 * losses[0]
    assert int(state["step"]) == 40


@pytest.mark.parametrize("shape,window", [((3, 7, 9, 4), (2, 2)), ((2, 8, 8, 1), (3, 3)), ((1, 5, 6, 2), (2, 3))])
def test_max_pool_equals_flax_in_values_and_gradients(shape, window):
    """dlexp's strided-slice max pool (fast gradient on CPU) against nnx.max_pool; random
    inputs have no ties, where the two gradients may split differently."""
    from dlexp.models.layers import max_pool

    x = jax.random.normal(jax.random.key(1), shape)
    ours = lambda x: max_pool(x, window, strides=window)  # noqa: E731
    flax = lambda x: nnx.max_pool(x, window, strides=window)  # noqa: E731
    assert ours(x).shape == flax(x).shape and bool(jnp.array_equal(ours(x), flax(x)))
    g = lambda f: jax.grad(lambda x: jnp.sum(f(x) ** 2))(x)  # noqa: E731
    np.testing.assert_allclose(g(ours), g(flax), rtol=1e-6)
    overlapping = max_pool(x, (2, 2), strides=(1, 1))  # not a partition: XLA's reduce_window
    assert bool(jnp.array_equal(overlapping, nnx.max_pool(x, (2, 2), strides=(1, 1))))
