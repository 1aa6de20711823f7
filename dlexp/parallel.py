"""Devices and shardings.

Every path runs the same jitted step over a one-axis ("data",) mesh: the batch is
sharded P("data"), the state replicated. `single` is that mesh over one device, so
there is one code path, and a multi-device run differs only in its mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from dlexp.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    mesh: Mesh
    replicated: NamedSharding
    batch: NamedSharding  # leading axis split over "data"

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size


def make_layout(parallel: str) -> Layout:
    devices = jax.local_devices()
    if parallel == "pmap":
        raise ConfigError("trainer.parallel=pmap is not available yet; use mesh (same numbers, same devices)")
    if parallel in ("single", "auto"):
        devices = devices[:1]
    mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)
    return Layout(mesh, NamedSharding(mesh, P()), NamedSharding(mesh, P("data")))


def check_batch(batch_size: int, layout: Layout, key: str = "trainer.batch_size") -> None:
    n = layout.num_devices
    if batch_size % n:
        raise ConfigError(
            f"{key}={batch_size} does not split over {n} devices; use a multiple of {n} "
            f"(e.g. {max(n, batch_size // n * n)}) or trainer.parallel=single"
        )
