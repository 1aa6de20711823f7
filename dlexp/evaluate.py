"""`python -m dlexp.evaluate RUN_DIR [split=test] [path=FILE] [checkpoint=best|last] [dataset.KEY=VALUE ...]`

Restores a run's best parameters and evaluates them on a split of its data set (read
again with the run's config and seed, plus any `dataset.*` overrides) or on every row
of a new file prepared with the run's prep.json. Prints a table on stderr and the
metrics as one JSON object on stdout. A run trained with a weight column (dataset.weight)
is evaluated with its sample weights, as the trainer evaluated it; a new file without that
column is evaluated unweighted (the result's "weighted" says which).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import jax
import numpy as np

from dlexp.errors import ConfigError, DlexpError
from dlexp.saved_run import SavedRun, asks_for_help, batched, load_run, parse_args

USAGE = (
    "python -m dlexp.evaluate RUN_DIR [split=test|val|train] [path=FILE] [checkpoint=best|last] [dataset.KEY=VALUE ...]"
)
KEYS = ("split", "path", "format", "checkpoint", "batch_size")
log = logging.getLogger("dlexp")


def evaluate(
    run: SavedRun,
    *,
    split: str = "test",
    path: str | None = None,
    fmt: str = "auto",
    which: str = "best",
    batch_size: int = 1024,
) -> dict[str, Any]:
    """{"metrics": {...}, "rows": n, "step": restored step, "on": what was evaluated, "weighted": bool}."""
    from dlexp.data.dataset import check_weight_values
    from dlexp.metrics import add_sums

    if path is not None:
        df = run.read(path, fmt)
        x, y = run.prep.transform(df)
        w = run.prep.transform_weight(df) if run.prep.weight in df.columns else None
        if w is not None:
            check_weight_values(w, f"weight column {run.prep.weight!r}", path)
        on = path
    else:
        x, y, w = split_arrays(run, split)
        on = f"{split} split"
    sm, task, step = run.model_and_task(tuple(x.shape[1:]), which)
    eval_step = jax.jit(task.make_eval_step(sm))
    weighted = w is not None
    w = np.ones(len(x), np.float32) if w is None else w
    parts = batched(lambda xb, yb, wb: eval_step(sm.params, sm.rest, xb, yb, wb), (x, y, w), batch_size)
    sums = parts[0][0]
    for s, _ in parts[1:]:
        sums = add_sums(sums, s)  # padded rows have weight 0
    return {
        "metrics": task.finalize(jax.device_get(sums)),
        "rows": int(len(x)),
        "step": step,
        "on": on,
        "weighted": weighted,
    }


def split_arrays(run: SavedRun, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(x, y, sample weights or None) of a split of the run's own data set, read again; warns
    when its preparation no longer matches."""
    from dlexp.data import load_dataset
    from dlexp.data.dataset import SPLITS
    from dlexp.data.shards import ShardSpec

    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not valid; choose one of {', '.join(SPLITS)}")
    cfg = run.cfg
    seed = cfg.seed if cfg.get("data_seed") is None else cfg.data_seed
    # a sharded run's statistics were combined shard by shard: one process reading every shard
    # combines them the same way, so its preparation equals prep.json's
    count = int(run.prep_dict.get("source", {}).get("shards", {}).get("count", 1))
    shards = ShardSpec.for_process(count, 0, 1)
    data = load_dataset(cfg.dataset, seed=seed, cache_dir=cfg.paths.cache, task=cfg.task, shards=shards)
    fresh = {k: v for k, v in data.prep.items() if k not in ("source", "report")}
    saved = {k: v for k, v in run.prep_dict.items() if k not in ("source", "report")}
    if json.dumps(fresh, sort_keys=True, default=str) != json.dumps(saved, sort_keys=True, default=str):
        log.warning(
            "the data prepared now differs from the run's prep.json (the file or the dataset overrides "
            "changed it); the split is evaluated as prepared now"
        )
    return data.x[split], data.y[split], data.sample_weights(split)


def main(argv: list[str] | None = None) -> int:
    from dlexp.loggers.console import summary_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if asks_for_help(argv, __doc__):
        return 0
    try:
        run_dir, opts, overrides = parse_args(argv, KEYS, USAGE)
        run = load_run(run_dir, overrides)
        result = evaluate(
            run,
            split=opts.get("split", "test"),
            path=opts.get("path"),
            fmt=opts.get("format", "auto"),
            which=opts.get("checkpoint", "best"),
            batch_size=int(opts.get("batch_size", 1024)),
        )
    except DlexpError as e:
        print(f"dlexp error: {e}", file=sys.stderr)
        return e.exit_code
    weighted = ", weighted by dataset.weight" if result["weighted"] else ""
    print(f"{run_dir}: step {result['step']} on {result['on']} ({result['rows']} rows{weighted})", file=sys.stderr)
    print(summary_table({"metrics": {k: v for k, v in result["metrics"].items() if "/" not in k}}), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
