"""Tasks: how a run's task is chosen, the GAN's alternating step, reconstruction,
forecasting, label smoothing, L1 / L2 penalties and bfloat16 compute."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dlexp.errors import ConfigError
from dlexp.models import GAN, MLP, Autoencoder
from dlexp.models.split import split_model
from dlexp.tasks import Classification, Forecasting, GANTask, Reconstruction, Regression, make_task
from dlexp.tasks.base import penalty


class Loss:  # the `loss` config node
    def __init__(self, l1=0.0, l2=0.0, label_smoothing=0.0):
        self.l1, self.l2, self.label_smoothing = l1, l2, label_smoothing


def data(n=32, shape=(8, 8, 1), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(size=(n, *shape)), jnp.float32), jnp.asarray(rng.integers(0, classes, n), jnp.int32)


def train(task, model, steps, x, y, lr=1e-2):
    sm = split_model(model)
    tx = optax.adam(lr)
    state = task.init_state(sm, tx)
    step = jax.jit(task.make_train_step(sm, tx))
    history = []
    for i in range(steps):
        state, sums = step(state, x, y, jax.random.key(i))
        history.append(task.finalize(jax.device_get({k: v for k, v in sums.items() if k != "grad_norm"})))
    return sm, state, history


def test_the_task_follows_the_data_unless_the_model_declares_one():
    assert isinstance(make_task("classification", num_outputs=3), Classification)
    assert type(make_task("regression", num_outputs=1)) is Regression
    assert isinstance(make_task("regression", num_outputs=8), Forecasting)  # a horizon
    gan = GAN((4,), latent=5, g_widths=[4], d_widths=[4], rngs=nnx.Rngs(0))
    task = make_task("classification", num_outputs=10, model=gan)
    assert isinstance(task, GANTask) and task.latent == 5
    vae = Autoencoder((4,), variational=True, beta=0.5, rngs=nnx.Rngs(0))
    task = make_task("classification", num_outputs=2, model=vae)
    assert isinstance(task, Reconstruction) and task.beta == 0.5 and task.likelihood == "auto"
    assert task.for_data("minmax").likelihood == "bernoulli" and task.for_data("standard").likelihood == "gaussian"


def test_bad_loss_options_are_config_errors():
    with pytest.raises(ConfigError, match="loss.label_smoothing=0.1 applies to classification only"):
        make_task("regression", num_outputs=1, loss=Loss(label_smoothing=0.1))
    with pytest.raises(ConfigError, match="loss.l2=-1.0 must be at least 0"):
        make_task("classification", num_outputs=2, loss=Loss(l2=-1))
    with pytest.raises(ConfigError, match="trainer.precision='float16'"):
        make_task("classification", num_outputs=2, precision="float16")


def test_gan_step_updates_both_nets_with_their_own_optimizer_state():
    x, y = data(shape=(4, 4, 1))  # dense nets compile fast; the DCGAN runs in tests/test_experiments.py
    gan = GAN((4, 4, 1), latent=8, kind="mlp", g_widths=[8], d_widths=[8], rngs=nnx.Rngs(0))
    task = make_task("classification", num_outputs=3, model=gan)
    sm, state, history = train(task, gan, 2, x, y)
    for net in ("generator", "discriminator"):
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), sm.params[net], state["params"][net])
        assert all(jax.tree.leaves(moved)), net
        assert int(jax.tree.leaves(state["opt"]["d" if net == "discriminator" else "g"])[0]) == 2  # adam count
    assert set(history[-1]) == {"loss", "d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in history[-1].values())
    samples = task.make_sampler(sm)(state["params"], state["rest"], jnp.ones((3, 8)))
    assert samples.shape == (3, 4, 4, 1)
    ev = task.make_eval_step(sm)(state["params"], state["rest"], x, y, jnp.ones(len(x)))
    assert set(ev) == {"loss", "d_loss", "g_loss", "d_real", "d_fake", "count"}  # the train sums, bar grad_norm


@pytest.mark.parametrize("variational", [False, True])
def test_autoencoder_learns_to_reconstruct(variational):
    x, y = data(n=64, shape=(16,))
    ae = Autoencoder((16,), hidden=[32], latent=4, variational=variational, rngs=nnx.Rngs(0))
    task = make_task("classification", num_outputs=3, model=ae)
    sm, state, history = train(task, ae, 60, x, y)
    assert history[-1]["mse"] < 0.5 * history[0]["mse"]
    assert (history[-1]["kl"] > 0) == variational
    recon = task.make_reconstruct(sm)(state["params"], state["rest"], x)
    assert recon.shape == x.shape
    np.testing.assert_allclose(recon, task.make_reconstruct(sm)(state["params"], state["rest"], x))  # eval: the mean


def test_forecasting_reports_the_error_per_step_ahead():
    task = Forecasting(horizon=3, target_scale=(10.0, 2.0))
    target = jnp.zeros((4, 3))
    pred = jnp.array([[0.0, 0.5, 1.0]] * 4)  # errors 0, 1, 2 in original units (std 2)
    sums = task.sums(task.loss(pred, target), pred, target, jnp.ones(4))
    m = task.finalize(jax.device_get(sums))
    assert m["rmse/t+1"] == 0.0 and m["rmse/t+2"] == pytest.approx(1.0) and m["rmse/t+3"] == pytest.approx(2.0)
    assert m["mse"] == pytest.approx((0 + 1 + 4) / 3)


def test_label_smoothing_trains_on_the_smoothed_target_and_reports_plain_cross_entropy():
    logits = jnp.array([[4.0, 0.0, 0.0]])
    label = jnp.array([0])
    plain = make_task("classification", num_outputs=3).loss(logits, label)
    task = make_task("classification", num_outputs=3, loss=Loss(label_smoothing=0.3))
    reported = task.loss(logits, label)
    hyper = {k: jnp.float32(v) for k, v in task.hyperparameters().items()}
    trained = task.train_losses(reported, logits, label, hyper)
    expected = optax.softmax_cross_entropy(logits, jnp.array([[0.8, 0.1, 0.1]]))
    np.testing.assert_allclose(trained, expected, rtol=1e-6)
    np.testing.assert_allclose(reported, plain, rtol=0)  # val/test losses stay comparable across smoothings
    assert float(trained[0]) > float(plain[0])


def test_l1_and_l2_penalize_kernels_only():
    params = {"dense": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}, "bn": {"scale": jnp.ones(2)}}
    assert float(penalty(params, {"l1": 0.1})) == pytest.approx(0.3)
    assert float(penalty(params, {"l2": 0.1})) == pytest.approx(0.5)
    x, y = data(n=32, shape=(6,))
    shrunk = train(
        make_task("classification", num_outputs=3, loss=Loss(l2=1.0)),
        MLP((6,), 3, hidden=[8], rngs=nnx.Rngs(0)),
        20,
        x,
        y,
    )[1]
    free = train(make_task("classification", num_outputs=3), MLP((6,), 3, hidden=[8], rngs=nnx.Rngs(0)), 20, x, y)[1]
    norm = lambda s: float(optax.tree.norm(s["params"]["head"]["kernel"]))  # noqa: E731
    assert norm(shrunk) < 0.75 * norm(free)


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state():
    x, y = data(n=64, shape=(6,))
    task = make_task("classification", num_outputs=3, precision="bfloat16")
    sm, state, history = train(task, MLP((6,), 3, hidden=[32], rngs=nnx.Rngs(0)), 40, x, y)
    assert {a.dtype for a in jax.tree.leaves((state["params"], state["opt"]))} <= {
        jnp.dtype("float32"),
        jnp.dtype("int32"),
    }
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    hlo = jax.jit(task.make_eval_step(sm)).lower(state["params"], state["rest"], x, y, jnp.ones(64)).as_text()
    assert "bf16" in hlo and "dot" in hlo
