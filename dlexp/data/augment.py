"""Image augmentation on device, inside the jitted train step (never at evaluation).

`make_augment(spec)` returns a pure `augment(x [B, H, W, C], key) -> x` for the
trainer's `fit(augment=...)`: the key comes from the seed and the step, so a run is
reproducible and a resumed run draws what an uninterrupted one would.
spec keys: flip (random left-right flip), crop (zero padding in pixels, then a
random crop back to H x W), rotate (a random angle in [-rotate, rotate] degrees).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dlexp.errors import DataError

KEYS = ("flip", "crop", "rotate")


def make_augment(spec: dict[str, Any] | None) -> Callable | None:
    if not spec:
        return None
    unknown = [k for k in spec if k not in KEYS]
    if unknown:
        raise DataError(f"dataset.augment has {unknown}; valid keys: {', '.join(KEYS)}")
    flip, pad, degrees = bool(spec.get("flip", False)), int(spec.get("crop", 0) or 0), float(spec.get("rotate", 0) or 0)
    if not (flip or pad or degrees):
        return None

    def augment(x: jax.Array, key: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise DataError(f"dataset.augment works on images [B, H, W, C]; this batch is {x.shape}")
        k_flip, k_crop, k_rot = jax.random.split(key, 3)
        if flip:
            x = random_flip(x, k_flip)
        if pad:
            x = random_crop(x, k_crop, pad)
        if degrees:
            x = random_rotate(x, k_rot, degrees)
        return x

    return augment


def random_flip(x: jax.Array, key: jax.Array) -> jax.Array:
    yes = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(yes, x[:, :, ::-1, :], x)


def random_crop(x: jax.Array, key: jax.Array, pad: int) -> jax.Array:
    b, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
    return jax.vmap(crop)(padded, offsets)


def random_rotate(x: jax.Array, key: jax.Array, degrees: float) -> jax.Array:
    """Bilinear rotation about the image centre; pixels from outside are zero."""
    b, h, w, c = x.shape
    angles = jnp.deg2rad(jax.random.uniform(key, (b,), minval=-degrees, maxval=degrees))
    yy, xx = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing="ij")

    def rotate(img, a):
        cos, sin = jnp.cos(a), jnp.sin(a)
        src_y = cos * yy - sin * xx + (h - 1) / 2
        src_x = sin * yy + cos * xx + (w - 1) / 2
        sample = lambda ch: jax.scipy.ndimage.map_coordinates(ch, [src_y, src_x], order=1, mode="constant", cval=0.0)
        return jax.vmap(sample, in_axes=2, out_axes=2)(img)

    return jax.vmap(rotate)(x, angles)
