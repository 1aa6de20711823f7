"""The Optax chain from config: schedules, weight decay, clipping, bad keys."""

import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from dlexp.config import Schedule, ScheduleConfig
from dlexp.errors import ConfigError
from dlexp.optim import make_optimizer, make_schedule


def opt(**kw):
    return OmegaConf.create(kw)


def test_schedules():
    const = make_schedule(0.1, ScheduleConfig(name=Schedule.constant), 100)
    assert float(const(50)) == pytest.approx(0.1)
    cos = make_schedule(0.1, ScheduleConfig(name=Schedule.cosine), 100)
    assert float(cos(0)) == pytest.approx(0.1) and float(cos(100)) == pytest.approx(0.0, abs=1e-7)
    assert float(cos(50)) == pytest.approx(0.05, rel=1e-4)
    wc = make_schedule(0.1, ScheduleConfig(name=Schedule.warmup_cosine, warmup_steps=0.1), 100)
    assert float(wc(0)) == 0.0 and float(wc(5)) == pytest.approx(0.05) and float(wc(10)) == pytest.approx(0.1)


def test_sgd_momentum_nesterov_and_decay():
    tx, _ = make_optimizer(
        opt(_target_="optax.sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5),
        ScheduleConfig(name="constant"),
        10,
    )
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    updates, _ = tx.update({"w": jnp.zeros(3)}, state, params)
    # zero gradient: only the decoupled decay acts, through momentum's first step (1 + 0.9 for nesterov)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 1.9 * np.ones(3), rtol=1e-5)


def test_clipping():
    tx, _ = make_optimizer(opt(_target_="optax.sgd", lr=1.0, clip_norm=1.0), ScheduleConfig(name="constant"), 10)
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.array([30.0, 40.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.6, -0.8], rtol=1e-5)


def test_adamw_takes_weight_decay_itself():
    tx, sched = make_optimizer(
        opt(_target_="optax.adamw", lr=1e-3, weight_decay=1e-2), ScheduleConfig(name="constant"), 10
    )
    assert float(sched(3)) == pytest.approx(1e-3)


def test_bad_optimizer_keys_are_named():
    with pytest.raises(ConfigError, match="optimizer.betas is not a parameter of optax.*adam.*valid keys: b1, b2"):
        make_optimizer(opt(_target_="optax.adam", lr=1e-3, betas=[0.9, 0.99]), ScheduleConfig(name="constant"), 10)
    with pytest.raises(ConfigError, match="optimizer.lr is missing"):
        make_optimizer(opt(_target_="optax.adam"), ScheduleConfig(name="constant"), 10)
    with pytest.raises(ConfigError, match="optimizer.lr=-1 must be a positive number"):
        make_optimizer(opt(_target_="optax.adam", lr=-1), ScheduleConfig(name="constant"), 10)
    with pytest.raises(ConfigError, match="optimizer._target_='optax.adamm'.*no 'adamm'"):
        make_optimizer(opt(_target_="optax.adamm", lr=1e-3), ScheduleConfig(name="constant"), 10)


def test_logged_learning_rates_are_the_schedule_at_the_log_steps():
    """Computed in one call before the loop (a schedule evaluated at a log waits for the
    queued training call); the values are the schedule's, and other steps still work."""
    import numpy as np
    import optax

    from dlexp.optim import log_steps, rates_at

    assert log_steps(30, 100).tolist() == [30, 60, 90, 100]
    for schedule in (optax.constant_schedule(1e-3), optax.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100)):
        rate = rates_at(schedule, log_steps(7, 100))
        for step in [*log_steps(7, 100).tolist(), 3, 0]:
            assert rate(step) == pytest.approx(float(schedule(step)), abs=1e-9)  # float32 ulps of the peak 1e-3
    assert rates_at(optax.constant_schedule(1e-3), [5])(5) == 1e-3  # a float schedule stays exact
    assert rates_at(optax.linear_schedule(1.0, 0.0, 10), np.arange(11))(10) == 0.0
