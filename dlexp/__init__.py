"""dlexp: a research experiment harness on JAX.

From a notebook or a script, `dlexp.run` trains one run as the command line would:

    import dlexp
    summary = dlexp.run(["model=mlp", "dataset=wine", "trainer.epochs=5"])
    summary["test"]["accuracy"], summary["run_dir"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["compose", "run"]


def compose(overrides: Sequence[str] = ()) -> Any:
    """The config `python -m dlexp.train <overrides>` would get (a DictConfig), composed from the
    shipped conf/ and a conf/ in the working directory (your own group options)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dlexp.config import config_dir, open_target_overrides, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return hydra_compose("train", overrides=open_target_overrides(list(overrides)))
    finally:
        GlobalHydra.instance().clear()


def run(overrides: Sequence[str] = (), run_dir: str | None = None) -> dict[str, Any]:
    """Trains one run; returns its summary (what summary.json holds, plus `run_dir`).

    `run_dir` defaults to paths.runs/<date>/<time>, as on the command line. A user error
    raises `dlexp.errors.DlexpError` with the one-line message the CLI prints.
    """
    import os
    import time

    from omegaconf import OmegaConf

    from dlexp.train import run as train_run

    cfg = compose(overrides)
    if run_dir is None:
        name = f"_{cfg.name}" if cfg.get("name") else ""
        run_dir = os.path.join(str(cfg.paths.runs), time.strftime("%Y-%m-%d"), time.strftime("%H-%M-%S") + name)
    os.makedirs(os.path.join(run_dir, ".hydra"), exist_ok=True)  # what evaluate and predict read back
    OmegaConf.save(cfg, os.path.join(run_dir, ".hydra", "config.yaml"))
    OmegaConf.save(OmegaConf.create(list(overrides)), os.path.join(run_dir, ".hydra", "overrides.yaml"))
    _, summary = train_run(cfg, run_dir)
    return {**summary, "run_dir": run_dir}
