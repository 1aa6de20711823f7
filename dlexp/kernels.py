"""Which operations XLA's CPU backend hands to YNNPACK when it compiles the training programs.

XLA CPU (jax 0.10) already runs convolutions, reductions and matrix products through
YNNPACK (XNNPACK's successor) where its cost model says so. `ynn_dots` narrows that to
the matrix products, so convolutions run on XLA's own Eigen kernels again, per compiled
program (`jax.jit(compiler_options=...)`). Which is faster depends on the shapes, so it
is a switch, not a rule. Measured on this 2-core CPU (README, Speed): `ynn_dots` trains
the peers' cnn (28x28, avg pool, a 3136x256 dense layer) 1.18x as fast and the default
cnn on 32x32x3 images 1.11x, but the default cnn on 8x8 digits 0.91x, on 16x16 0.84x,
and a ResNet 0.96x.
Handing YNNPACK the elementwise ops as well made the max-pooled cnn 0.6x as fast.
"""

from __future__ import annotations

from typing import Any

from dlexp.config import enum_value
from dlexp.errors import ConfigError

CHOICES = ("xla", "ynn_dots")

# XLA's library fusion types (the enum names its option parser takes); the list replaces XLA's own.
YNN_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


def resolve(choice: str, platform: str) -> str:
    """The setting a run compiles with: `ynn_dots` only where asked for and on CPU."""
    if choice not in CHOICES:
        raise ConfigError(f"trainer.cpu_kernels={choice!r}; valid: {', '.join(CHOICES)}")
    return choice if platform == "cpu" else "xla"


def of_trainer(cfg: Any, platform: str) -> str:
    """trainer.cpu_kernels (an enum member from the structured config, or a plain string) resolved."""
    return resolve(enum_value(getattr(cfg, "cpu_kernels", "xla")), platform)


def compiler_options(setting: str) -> dict[str, Any] | None:
    """`jax.jit`'s compiler_options for a resolved setting (None: XLA's own choice)."""
    return dict(YNN_DOTS) if setting == "ynn_dots" else None
