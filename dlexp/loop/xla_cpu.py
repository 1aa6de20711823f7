"""XLA CPU settings of the loop's programs, decided once per run, beside the loop.

Each is kept because it pays in `scripts/bench.py` or avoids a failure; the numbers
and the settings tried and dropped are in docs/performance.md.

- Fused steps (`trainer.steps_per_call`): a small model is bound by the cost of each
  execution, so `auto` runs several steps per call with `lax.scan`, but only on one CPU
  device, without convolutions, and where the run is long enough to pay for compiling
  the longer program.
- Scan unrolling: XLA CPU compiles convolution gradients inside a rolled loop to slow
  kernels, so a fused call of a convolutional model is unrolled.
- Bounded dispatch: with several CPU devices one call is in flight at a time; XLA's
  in-process all-reduce can deadlock with many queued.
- Kernels (`trainer.cpu_kernels`): `ynn_dots` hands only matrix products to YNNPACK.
  Whether that is faster depends on the CPU and the shapes, so XLA's choice is the default.
"""

from __future__ import annotations

from typing import Any

from dlexp.errors import ConfigError

FUSED_STEPS = 10  # steps per call of `auto` where fusing pays
# Fusing pays back the longer program's compile only over enough work: the run's floating-point
# operations (about 6 x parameters x batch x steps) must reach this, several seconds of training.
FUSE_MIN_FLOPS = 1e12
CPU_KERNELS = ("xla", "ynn_dots")
YNN_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


def check_steps_per_call(value: Any) -> None:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise ConfigError(f"trainer.steps_per_call={value!r} must be auto or an integer >= 1")


def steps_per_call(value: Any, *, platform: str, conv: bool, devices: int, run_flops: float) -> int:
    """Steps per compiled call: an explicit value, or what `auto` picks for this run."""
    check_steps_per_call(value)
    if value != "auto":
        return int(value)
    fuse = platform == "cpu" and not conv and devices == 1 and run_flops >= FUSE_MIN_FLOPS
    return FUSED_STEPS if fuse else 1


def scan_unroll(n: int, *, platform: str, conv: bool) -> int:
    return n if conv and platform == "cpu" else 1


def bounded_dispatch(*, platform: str, devices: int) -> bool:
    """Whether the loop waits for one call before it queues the next."""
    return platform == "cpu" and devices > 1


def compiler_options(kernels: str, *, platform: str, pmap: bool) -> dict[str, Any] | None:
    """`jax.jit`'s compiler_options for trainer.cpu_kernels (None: XLA's own, which keeps the
    compilation-cache key of a program compiled with XLA's defaults)."""
    if kernels not in CPU_KERNELS:
        raise ConfigError(f"trainer.cpu_kernels={kernels!r}; valid: {', '.join(CPU_KERNELS)}")
    if kernels == "xla" or platform != "cpu":
        return None
    if pmap:
        raise ConfigError(
            f"trainer.cpu_kernels={kernels} needs a jit-compiled step; jax.pmap takes no compiler "
            "options: use trainer.parallel=mesh (the same data parallelism) or trainer.cpu_kernels=xla"
        )
    return dict(YNN_DOTS)
