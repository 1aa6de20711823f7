"""Devices, meshes and shardings; everything that must happen before JAX starts.

`mesh` (and `single`, a mesh of one device) runs one jitted step over a ("data",)
mesh: the batch sharded P("data"), the state replicated, XLA inserting the
all-reduce. `pmap` is the classic path: one replica of the state per device, the
batch split by hand, gradients averaged with `lax.pmean`; it gives the same numbers.

On a CPU host one XLA CPU device keeps about one core busy for convolutions, so
`configure_host` creates one CPU device per core before the backend starts, and
`auto` shards over them only where that pays (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dlexp.data.shards import ShardSpec
from dlexp.errors import ConfigError

log = logging.getLogger("dlexp")
PARALLEL = ("auto", "single", "mesh", "pmap")


def host_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_host(
    parallel: str, compile_cache_dir: str | None, cpu_devices: int | None = None, distributed: Any = None
) -> None:
    """Settings JAX reads once, at backend start: call before any array is made.

    - multi-process set-up (`init_distributed`) when launched as several processes;
    - one CPU device per core (harmless on GPU/TPU hosts, where CPU devices go unused, and
      for a single-device run, which is as fast with them);
    - the persistent compilation cache, so a repeated run or a sweep job skips compiling.
    """
    if distributed is not None and init_distributed(distributed):
        cpu_devices = cpu_devices or 1  # one CPU device per process: the processes share the cores
    forced = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if parallel != "single" and not forced:  # an explicit XLA flag (tests, users) wins
        n = cpu_devices or host_cores()
        try:
            jax.config.update("jax_num_cpu_devices", n)
        except RuntimeError:  # the backend is already up (e.g. a second run in one process)
            pass
    if compile_cache_dir:
        os.makedirs(compile_cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", compile_cache_dir)
        # programs that compile faster are not worth a file, unless JAX's own variable says otherwise
        min_secs = float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", 0.2))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_secs)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


_DISTRIBUTED = False


def init_distributed(cfg: Any) -> bool:
    """`jax.distributed.initialize()` when this is one of several processes.

    Explicit settings (trainer.distributed.coordinator / num_processes / process_id)
    win; otherwise a SLURM job step with several tasks (sbatch, or the submitit
    launcher) is detected from its environment. Returns True when distributed.
    """
    global _DISTRIBUTED
    if _DISTRIBUTED:
        return True
    explicit = cfg.coordinator is not None
    slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ
    if not explicit and not slurm:
        return False
    if explicit and (cfg.num_processes is None or cfg.process_id is None):
        raise ConfigError(
            "trainer.distributed.coordinator is set: also set trainer.distributed.num_processes "
            "and trainer.distributed.process_id (0 .. num_processes-1)"
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    if explicit:
        jax.distributed.initialize(
            coordinator_address=cfg.coordinator, num_processes=int(cfg.num_processes), process_id=int(cfg.process_id)
        )
    else:
        jax.distributed.initialize()  # JAX reads the SLURM environment
    _DISTRIBUTED = True
    log.info("distributed: process %d of %d", jax.process_index(), jax.process_count())
    return True


def is_main_process() -> bool:
    """Only process 0 writes logs, summaries and plots."""
    return jax.process_index() == 0


@dataclass(frozen=True)
class Layout:
    """Where the state and the batches live.

    kind: "mesh" (one device is a mesh of one), "pmap", or "copies" (a leading axis of
    `copies` independent states, vmapped, spread over the mesh's devices).
    """

    kind: str
    mesh: Mesh
    replicated: NamedSharding
    batch: NamedSharding  # leading axis split over "data": batch rows, pmap replicas, or copies
    copies: int = 0

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    @property
    def is_pmap(self) -> bool:
        return self.kind == "pmap"

    @property
    def num_copies(self) -> int:
        """How many runs the state holds (a single run is one)."""
        return self.copies if self.kind == "copies" else 1

    @property
    def platform(self) -> str:
        return self.mesh.devices.flat[0].platform

    @property
    def state_sharding(self) -> NamedSharding:
        return self.replicated if self.kind == "mesh" else self.batch

    def place_state(self, state: Any) -> Any:
        """One state (copies: the stacked states) -> the form the compiled step takes."""
        if self.is_pmap:  # one copy per device: a leading device axis, sharded over "data"
            n = self.num_devices
            return jax.tree.map(lambda a: jax.device_put(jnp.broadcast_to(a, (n, *jnp.shape(a))), self.batch), state)
        return jax.device_put(state, self.state_sharding)

    def unreplicate(self, state: Any) -> Any:
        """The step's form -> the state evaluation and checkpoints use (pmap: replica 0)."""
        if self.is_pmap:
            return jax.device_put(jax.tree.map(lambda a: a[0], state), self.replicated)
        return state

    def per_copy(self, tree: Any) -> list[Any]:
        """Host values of the step's form (metric sums) -> one per copy."""
        if self.kind == "copies":
            return [jax.tree.map(lambda a, i=i: a[i], tree) for i in range(self.copies)]
        if self.is_pmap:  # sums are added across replicas inside the step: replica 0 holds them
            return [jax.tree.map(lambda a: a[0], tree)]
        return [tree]


def choose_parallel(
    parallel: str, *, has_conv: bool, batch_size: int, copies: int = 0, devices: list | None = None
) -> tuple[str, int]:
    """(kind, number of devices) for a run; explains what `auto` picked.

    auto: every local accelerator; on CPU, all cores' devices only for models with
    convolutions (XLA's matrix products already use every core of one device, so sharding
    an mlp only adds the all-reduce; docs/performance.md), and for copies (trainer.seeds,
    trainer.copies), which spread over the devices with no all-reduce at all.
    """
    if parallel not in PARALLEL:
        raise ConfigError(f"trainer.parallel={parallel!r}; valid: {', '.join(PARALLEL)}")
    if copies and parallel == "pmap":
        raise ConfigError(
            "trainer.seeds trains its copies in one jit-compiled program, which trainer.parallel=pmap "
            "cannot hold; use trainer.parallel=auto, single or mesh"
        )
    devices = devices if devices is not None else jax.local_devices()
    n = len(devices)
    kind = "copies" if copies else None
    if parallel == "single":
        return kind or "mesh", 1
    if jax.process_count() > 1:  # several processes: one mesh over all of them
        if parallel == "pmap":
            raise ConfigError("trainer.parallel=pmap runs in one process; use mesh (or auto) across processes")
        return kind or "mesh", jax.device_count()
    if parallel in ("mesh", "pmap"):
        return kind or parallel, n
    on_cpu = devices[0].platform == "cpu"
    want = n if (not on_cpu or has_conv or copies) else 1  # copies share no gradient: spreading them costs nothing
    if want > 1 and not copies and batch_size % want:
        log.info("parallel=auto: batch %d does not split over %d devices; using one", batch_size, want)
        want = 1
    return kind or "mesh", want


def make_layout(kind: str, num_devices: int, copies: int = 0) -> Layout:
    """A mesh over `num_devices` local devices (over every process's devices when
    distributed); copies spread over the devices only when they divide evenly."""
    if jax.process_count() > 1:
        devices = jax.devices()
    else:
        if kind == "copies" and copies % num_devices:
            num_devices = 1
        devices = jax.local_devices()[:num_devices]
    mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)
    return Layout(kind, mesh, NamedSharding(mesh, P()), NamedSharding(mesh, P("data")), copies)


def data_shards(trainer: Any, copies: bool = False) -> ShardSpec:
    """This process's data shards (trainer.data_shards; null: one per device across several
    processes, so each process reads only its own rows, where the run can; else 1)."""
    explicit = trainer.data_shards is not None
    count = trainer.data_shards if explicit else (jax.device_count() if jax.process_count() > 1 else 1)
    why = [
        ("trainer.seeds / trainer.copies", copies),
        ("trainer.cv (folds are cut from every row)", bool(trainer.cv.folds)),
        ("trainer.parallel=pmap", trainer.parallel == "pmap"),
    ]
    bad = [name for name, on in why if on]
    if int(count) > 1 and bad:
        if explicit:
            raise ConfigError(
                f"trainer.data_shards={count} reads each process's own rows, which {', '.join(bad)} cannot use; "
                "set trainer.data_shards=1 (every process reads every row)"
            )
        log.info("data: every process reads every row, since %s needs them", ", ".join(bad))
        count = 1
    return ShardSpec.for_process(int(count), jax.process_index(), jax.process_count(), explicit)


def device_summary() -> list[dict[str, Any]]:
    return [
        {"id": d.id, "kind": d.device_kind, "platform": d.platform, "process": d.process_index} for d in jax.devices()
    ]


def split_for_devices(x: Any, n: int) -> Any:
    """Inside pmap: this device's slice of a full batch (rows d*B/n .. (d+1)*B/n) of every
    leaf of `x` (an array, or a pytree such as targets with their sample weights)."""
    d = jax.lax.axis_index("data")

    def mine(a: jax.Array) -> jax.Array:
        per = a.shape[0] // n
        return jax.lax.dynamic_slice_in_dim(a, d * per, per)

    return jax.tree.map(mine, x)
