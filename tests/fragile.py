"""A test model whose seed decides whether its loss is finite: `broken(seed)` says which."""

import jax
import jax.numpy as jnp
from flax import nnx


class SeedFragile(nnx.Module):
    """A linear classifier, except that for some seeds a gate drawn at init makes every output NaN."""

    def __init__(self, in_shape, num_outputs: int, *, rngs: nnx.Rngs, **mlp_keys):
        size = 1
        for d in in_shape:
            size *= d
        self.linear = nnx.Linear(size, num_outputs, rngs=rngs)
        self.gate = nnx.Variable(jax.random.uniform(rngs.params(), ()))

    def __call__(self, x):
        y = self.linear(x.reshape(x.shape[0], -1))
        return jnp.where(self.gate[...] > 0.5, jnp.nan, y)


def broken(seed: int) -> bool:
    return bool(SeedFragile((2,), 2, rngs=nnx.Rngs(seed)).gate[...] > 0.5)
