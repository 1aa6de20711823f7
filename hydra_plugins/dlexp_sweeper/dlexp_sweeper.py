"""Hydra finds its plugins in the `hydra_plugins` package: this is dlexp's sweeper, registered
as `hydra/sweeper=dlexp`. The work is done in dlexp/sweeper/."""

# No `from __future__ import annotations`: Hydra loads this module outside sys.modules, where
# dataclasses cannot resolve string annotations, and OmegaConf reads these types.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class SamplerConf:
    name: str = "tpe"  # tpe | random | gp
    seed: int | None = None
    n_startup_trials: int = 10  # random trials before the model-based ones


@dataclass
class PrunerConf:
    name: str | None = None  # median | null (off): stops a packed trial whose val objective lags the median
    n_startup_trials: int = 5
    n_warmup_steps: int = 0


@dataclass
class DlexpSweeperConf:
    _target_: str = "hydra_plugins.dlexp_sweeper.dlexp_sweeper.DlexpSweeper"
    params: dict[str, str] | None = None  # key: sweep (grid: a,b / choice / range; search: also interval)
    n_trials: int | None = None  # set: an Optuna search of this many trials (per sweeper process)
    batch: int = 8  # trials asked at once: trained as one program where they pack
    direction: str = "minimize"  # minimize | maximize
    study_name: str | None = None
    storage: str | None = None  # any SQLAlchemy URL; null: sqlite in the sweep dir
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)


ConfigStore.instance().store(group="hydra/sweeper", name="dlexp", node=DlexpSweeperConf, provider="dlexp")


class DlexpSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from omegaconf import OmegaConf

        settings.pop("_target_", None)
        self.settings: Any = OmegaConf.merge(OmegaConf.structured(DlexpSweeperConf), settings)
        self.job_sweep: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        from dlexp.sweeper.plugin import Sweep

        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.job_sweep = Sweep(config, hydra_context, launcher)

    def sweep(self, arguments: list[str]) -> Any:  # type: ignore[override]
        import sys

        from hydra.core.override_parser.overrides_parser import OverridesParser

        from dlexp.errors import DlexpError
        from dlexp.sweeper import plugin, search

        params = [f"{k}={v}" for k, v in (self.settings.params or {}).items()]
        parser = OverridesParser.create(config_loader=self.job_sweep.hydra_context.config_loader)
        overrides = parser.parse_overrides([*params, *arguments])
        self.job_sweep.record_swept(overrides)  # jobs name their TensorBoard runs by these keys
        try:
            if self.settings.n_trials:
                return search.optimize(self.job_sweep, overrides, self.settings)
            return plugin.grid(self.job_sweep, overrides)
        except DlexpError as e:  # a bad sweep setting: one line and exit 2, as for a run
            print(f"dlexp error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
