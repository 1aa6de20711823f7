"""How XLA's CPU backend compiles the training programs: which operations it hands to
YNNPACK (`trainer.cpu_kernels`) and how wide the vectors of its own loops are
(`trainer.cpu_vector_width`).

XLA CPU (jax 0.10) already runs convolutions, reductions and matrix products through
YNNPACK (XNNPACK's successor) where its cost model says so. `ynn_dots` narrows that to
the matrix products, so convolutions run on XLA's own Eigen kernels again, per compiled
program (`jax.jit(compiler_options=...)`). Which is faster depends on the shapes, so it
is a switch, not a rule. Measured on this 2-core CPU (README, Speed): `ynn_dots` trains
the peers' cnn (28x28, avg pool, a 3136x256 dense layer) 1.18x as fast and the default
cnn on 32x32x3 images 1.11x, but the default cnn on 8x8 digits 0.91x, on 16x16 0.84x,
and a ResNet 0.96x.
Handing YNNPACK the elementwise ops as well made the max-pooled cnn 0.6x as fast.

XLA CPU emits its own loops (the optimizer update, activations, reductions) for 256-bit
vectors by default, even where the CPU has AVX-512: on Intel's Skylake-era server parts
512-bit instructions lower the clock. AMD's AVX-512 cores (Zen 4, Zen 5) run them at full
clock, so `auto` asks for 512 bits there: measured on this 2-core Zen 5 (README, Speed),
the benchmark mlp's fused call 1.03x as fast (log calls 1.015x), the cnn unchanged.
"""

from __future__ import annotations

import functools
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


VECTOR_WIDTHS = ("auto", 256, 512)
XLA_VECTOR_WIDTH = 256  # what XLA CPU prefers when not told


def resolve_width(value: Any, platform: str, options: bool = True) -> int | None:
    """The vector width a run compiles with (None off CPU, where the setting means nothing).
    `options`: whether the programs take compiler options (jax.pmap does not); `auto` is
    then XLA's own width."""
    if value not in VECTOR_WIDTHS or isinstance(value, bool):
        raise ConfigError(f"trainer.cpu_vector_width={value!r}; valid: auto, 256, 512")
    if platform != "cpu":
        return None
    if value == "auto":
        return 512 if options and avx512_at_full_clock() else XLA_VECTOR_WIDTH
    return int(value)


def of_trainer(cfg: Any, platform: str, options: bool = True) -> tuple[str, int | None]:
    """(trainer.cpu_kernels, trainer.cpu_vector_width) resolved; an enum member from the
    structured config or a plain string; a config without the keys: XLA's kernels, auto width.
    Without `options` (jax.pmap takes no compiler options), asking for anything but XLA's own
    is an error."""
    library = resolve(enum_value(getattr(cfg, "cpu_kernels", "xla")), platform)
    width = resolve_width(getattr(cfg, "cpu_vector_width", "auto"), platform, options)
    if not options:
        for key, value, xla_own in (("cpu_kernels", library, "xla"), ("cpu_vector_width", width, XLA_VECTOR_WIDTH)):
            if value not in (xla_own, None):
                raise ConfigError(f"trainer.{key}={value} needs a jit-compiled step; jax.pmap takes no compiler "
                                  f"options: use trainer.parallel=mesh (the same data parallelism) or "
                                  f"trainer.{key}={xla_own}")
    return library, width


@functools.cache
def cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read().split("\n\n", 1)[0]
    except OSError:  # not Linux
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in head.splitlines() if ":" in line)}


def avx512_at_full_clock() -> bool:
    """An AMD CPU with AVX-512 (Zen 4 and later): 512-bit vectors there cost no clock.
    Intel's are left at XLA's 256 bits: some lower the clock for 512-bit work (not measured here)."""
    info = cpu_info()
    return info.get("vendor_id") == "AuthenticAMD" and "avx512f" in info.get("flags", "").split()


def compiler_options(setting: str, width: int | None = None) -> dict[str, Any] | None:
    """`jax.jit`'s compiler_options for resolved settings (None: XLA's own choice, so a
    program compiled with XLA's defaults keeps its compilation-cache key)."""
    options: dict[str, Any] = dict(YNN_DOTS) if setting == "ynn_dots" else {}
    if width is not None and width != XLA_VECTOR_WIDTH:
        options["xla_cpu_prefer_vector_width"] = width
    return options or None
