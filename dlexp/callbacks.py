"""Hydra callbacks (conf/train.yaml, hydra.callbacks).

`SweepReport` closes a multirun: it prints the results table of every job
(`dlexp.sweep`, also written as results.parquet / results.csv in the sweep dir) and
exits non-zero when any job failed. Jobs never stop a sweep themselves
(`dlexp.jobs.job_failed`), so the exit code is decided here, after all have run.
With logger.mlflow on, it also opens the sweep's MLflow run before any job starts (the
jobs' runs nest under it) and ends it with the results table (dlexp/loggers/mlflow.py).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("dlexp")


class SweepReport(Callback):
    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        # An Optuna study's sqlite file is opened before any job makes a directory.
        storage = str(config.hydra.sweeper.get("storage") or "")
        if storage.startswith("sqlite:///"):
            os.makedirs(os.path.dirname(storage[len("sqlite:///") :]) or ".", exist_ok=True)
        if mlflow_on(config):  # one parent run, made here: jobs may start together
            from dlexp.errors import DlexpError
            from dlexp.loggers.mlflow import start_sweep, sweep_logger

            try:
                start_sweep(sweep_logger(config), str(config.hydra.sweep.dir), list(config.hydra.overrides.task))
            except DlexpError as e:
                print(f"dlexp error: {e}", file=sys.stderr)
                sys.exit(e.exit_code)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import polars as pl

        from dlexp.sweep import report

        sweep_dir = config.hydra.sweep.dir
        print(f"\nsweep {sweep_dir}", file=sys.stderr)
        try:
            ranked = report([sweep_dir], file=sys.stderr)
        except SystemExit as e:  # no job dirs at all
            print(e, file=sys.stderr)
            end_mlflow(config, failed=True)
            sys.exit(1)
        done = pl.col("status").is_in(["completed", "pruned"])  # a pruned trial ended as its search asked
        failed = ranked.filter(~done).get_column("job").unique().to_list()
        end_mlflow(config, failed=bool(failed))
        if failed:
            print(
                f"{len(failed)} of {ranked.get_column('job').n_unique()} jobs failed: {', '.join(failed)}",
                file=sys.stderr,
            )
            sys.exit(1)


def end_mlflow(config: Any, failed: bool) -> None:
    """The sweep's MLflow run gets the results table and ends (logger.mlflow on)."""
    if mlflow_on(config):
        from dlexp.loggers.mlflow import end_sweep, sweep_logger

        end_sweep(sweep_logger(config), str(config.hydra.sweep.dir), failed)


def mlflow_on(config: Any) -> bool:
    return bool((config.get("logger") or {}).get("mlflow"))
