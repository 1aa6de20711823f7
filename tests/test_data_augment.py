"""Image augmentation: seeded, shape-preserving, each op checked on a hand-made image."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlexp.data.augment import make_augment, random_crop, random_flip, random_rotate
from dlexp.errors import DataError


def test_flip_is_a_mirror_or_identity_and_seeded():
    x = jnp.arange(2 * 4 * 4, dtype=jnp.float32).reshape(2, 4, 4, 1)
    y = random_flip(jnp.tile(x, (8, 1, 1, 1)), jax.random.key(0))
    for i in range(16):
        xi = x[i % 2]
        assert jnp.array_equal(y[i], xi) or jnp.array_equal(y[i], xi[:, ::-1])
    assert jnp.array_equal(y, random_flip(jnp.tile(x, (8, 1, 1, 1)), jax.random.key(0)))


def test_crop_with_padding_is_a_shifted_window():
    x = jnp.ones((16, 5, 5, 1))
    y = random_crop(x, jax.random.key(1), pad=2)
    assert y.shape == x.shape
    sums = np.asarray(y.sum(axis=(1, 2, 3)))  # shifted by (dy, dx): (5-|dy|)(5-|dx|) ones remain
    assert set(sums.tolist()) <= {float((5 - a) * (5 - b)) for a in range(3) for b in range(3)}


def test_rotation_by_zero_degrees_keeps_the_image_and_small_angles_stay_close():
    x = jax.random.uniform(jax.random.key(2), (4, 9, 9, 3))
    near = random_rotate(x, jax.random.key(3), degrees=1e-6)
    np.testing.assert_allclose(np.asarray(near), np.asarray(x), atol=1e-4)
    assert random_rotate(x, jax.random.key(3), degrees=15.0).shape == x.shape


def test_make_augment_checks_keys_and_is_off_without_spec():
    assert make_augment(None) is None and make_augment({"flip": False}) is None
    with pytest.raises(DataError, match="valid keys: flip, crop, rotate"):
        make_augment({"mirror": True})
    aug = jax.jit(make_augment({"flip": True, "crop": 1, "rotate": 10}))
    x = jnp.ones((4, 6, 6, 1))
    assert aug(x, jax.random.key(0)).shape == x.shape
