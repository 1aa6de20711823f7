"""A generative run's samples for `dlexp.report`: a grid from the prior, and a grid of walks
between pairs of codes (each row one walk), decoded by the run's best state."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlexp.plots import image_grid
from dlexp.tasks import GANTask, Reconstruction

SEED = 0  # the report's codes: the same for every report of a run
SAMPLES, WALKS, STEPS = 64, 8, 10


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """Spherical interpolation between codes a and b: a walk that stays where a Gaussian prior
    puts its mass (a straight line passes near the origin, which the prior rarely draws)."""
    cos = jnp.sum(a * b, -1, keepdims=True) / (
        jnp.linalg.norm(a, axis=-1, keepdims=True) * jnp.linalg.norm(b, axis=-1, keepdims=True)
    )
    omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    so = jnp.maximum(jnp.sin(omega), 1e-6)
    return (jnp.sin((1 - t) * omega) / so) * a + (jnp.sin(t * omega) / so) * b


def sample_grids(run_dir: str, out: str) -> list[tuple[str, str]]:
    """(title, file name) of the grids written to `out`; none for a run that does not
    generate images (not a GAN or VAE, or not image data)."""
    from dlexp.saved_run import load_run

    run = load_run(run_dir)
    shape = run.prep_dict.get("image_shape")
    if not shape:
        return []
    sm, task, _ = run.model_and_task(tuple(shape))
    if not (isinstance(task, GANTask) or (isinstance(task, Reconstruction) and task.variational)):
        return []
    latent = task.latent
    decode = jax.jit(task.make_sampler(sm))
    k_samples, k_from, k_to = jax.random.split(jax.random.key(SEED), 3)
    z = jax.random.normal(k_samples, (SAMPLES, latent))
    t = jnp.linspace(0.0, 1.0, STEPS)[None, :, None]
    a, b = (jax.random.normal(k, (WALKS, 1, latent)) for k in (k_from, k_to))
    walks = slerp(a, b, t).reshape(-1, latent)
    import matplotlib.pyplot as plt

    grids = [
        ("samples from the prior (best state)", "samples.png", image_grid(np.asarray(decode(sm.params, sm.rest, z)))),
        (
            "latent walks: each row interpolates between two codes",
            "interpolation.png",
            image_grid(np.asarray(decode(sm.params, sm.rest, walks)), cols=STEPS),
        ),
    ]
    for _, name, grid in grids:
        plt.imsave(os.path.join(out, name), grid)
    return [(title, name) for title, name, _ in grids]
