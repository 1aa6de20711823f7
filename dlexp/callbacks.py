"""Hydra callbacks (conf/train.yaml, hydra.callbacks).

`SweepReport` closes a multirun: it prints the results table of every job
(`dlexp.sweep`, also written as results.parquet / results.csv in the sweep dir) and
exits non-zero when any job failed. Jobs never stop a sweep themselves
(`dlexp.jobs.job_failed`), so the exit code is decided here, after all have run.
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

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import polars as pl

        from dlexp.sweep import report

        sweep_dir = config.hydra.sweep.dir
        print(f"\nsweep {sweep_dir}", file=sys.stderr)
        try:
            ranked = report([sweep_dir], file=sys.stderr)
        except SystemExit as e:  # no job dirs at all
            print(e, file=sys.stderr)
            sys.exit(1)
        done = pl.col("status").is_in(["completed", "pruned"])  # a pruned trial ended as its search asked
        failed = ranked.filter(~done).get_column("job").unique().to_list()
        if failed:
            print(
                f"{len(failed)} of {ranked.get_column('job').n_unique()} jobs failed: {', '.join(failed)}",
                file=sys.stderr,
            )
            sys.exit(1)
