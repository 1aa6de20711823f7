"""`python -m dlexp.predict RUN_DIR path=FILE [out=FILE.parquet] [checkpoint=best|last]`

Prepares every row of FILE with the run's prep.json, runs the restored best model, and
writes Parquet: the file's other columns (ids, a label if present) unchanged, then
`prediction` (the class name, or the value in the target's units) and, for a
classifier, `prob_<class>` per class. The default output is
<run dir>/predictions/<file stem>.parquet; it is written atomically.
"""

from __future__ import annotations

import logging
import os
import sys

import numpy as np
import polars as pl

from dlexp.errors import ConfigError, DlexpError
from dlexp.saved_run import SavedRun, asks_for_help, load_run, outputs, parse_args

USAGE = "python -m dlexp.predict RUN_DIR path=FILE [out=FILE.parquet] [format=auto] [checkpoint=best|last]"
KEYS = ("path", "out", "format", "checkpoint", "batch_size")


def predict(
    run: SavedRun, path: str, *, fmt: str = "auto", which: str = "best", batch_size: int = 1024
) -> pl.DataFrame:
    df = run.read(path, fmt)
    x = run.prep.transform_x(df)
    sm, _task, _step = run.model_and_task(tuple(x.shape[1:]), which)
    out = outputs(sm, x, batch_size)
    inputs = set(run.prep.features) | set(getattr(run.prep, "categorical", []) or [])
    kept = df.select([c for c in df.columns if c not in inputs])
    if run.prep.task == "classification":
        z = out - out.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        classes = list(run.prep.classes)
        columns = {"prediction": pl.Series([classes[i] for i in probs.argmax(axis=1)])}
        columns.update({f"prob_{c}": pl.Series(probs[:, i].astype(np.float32)) for i, c in enumerate(classes)})
    else:
        mean, std = run.target_scale()
        pred = out.reshape(len(x), -1) * std + mean
        columns = (
            {"prediction": pl.Series(pred[:, 0])}
            if pred.shape[1] == 1
            else {f"prediction_{i}": pl.Series(pred[:, i]) for i in range(pred.shape[1])}
        )
    return kept.with_columns(**columns)


def write_parquet(df: pl.DataFrame, out: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    df.write_parquet(tmp)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if asks_for_help(argv, __doc__):
        return 0
    try:
        run_dir, opts, overrides = parse_args(argv, KEYS, USAGE)
        if "path" not in opts:
            raise ConfigError(f"path=FILE is required; usage: {USAGE}")
        if overrides:
            raise ConfigError(f"predict takes no dataset overrides ({overrides[0]}); usage: {USAGE}")
        run = load_run(run_dir)
        stem = os.path.splitext(os.path.basename(opts["path"].rstrip("/")))[0] or "predictions"
        out = opts.get("out") or os.path.join(run_dir, "predictions", f"{stem}.parquet")
        df = predict(
            run,
            opts["path"],
            fmt=opts.get("format", "auto"),
            which=opts.get("checkpoint", "best"),
            batch_size=int(opts.get("batch_size", 1024)),
        )
        write_parquet(df, out)
    except DlexpError as e:
        print(f"dlexp error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"{len(df)} predictions -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
