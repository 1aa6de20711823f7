"""`python -m dlexp.predict RUN_DIR path=FILE [out=FILE.parquet] [checkpoint=best|last]`

Prepares every row of FILE with the run's prep.json, runs the restored best model, and
writes Parquet: the file's other columns (ids, a label if present) unchanged, then
`prediction` (the class name, or the value in the target's units) and, for a
classifier, `prob_<class>` per class. A language model writes each row's `perplexity`
and `generated`: the greedy continuation of the row's text, up to the run's max_length
tokens. A seq2seq run writes each row's generated target text, `generated` (greedy) and
`generated_beam` (beam search, the run's callbacks.translations.beam_size). The default
output is <run dir>/predictions/<file stem>.parquet; it is written atomically.
"""

from __future__ import annotations

import logging
import os
import sys

import numpy as np
import polars as pl

from dlexp.errors import ConfigError, DlexpError
from dlexp.saved_run import SavedRun, asks_for_help, batched, load_run, outputs, parse_args

USAGE = "python -m dlexp.predict RUN_DIR path=FILE [out=FILE.parquet] [format=auto] [checkpoint=best|last]"
KEYS = ("path", "out", "format", "checkpoint", "batch_size")


def predict(
    run: SavedRun, path: str, *, fmt: str = "auto", which: str = "best", batch_size: int = 1024
) -> pl.DataFrame:
    df = run.read(path, fmt)
    x = run.prep.transform_x(df)
    sm, task, _step = run.model_and_task(tuple(x.shape[1:]), which)
    inputs = set(run.prep.features) | set(getattr(run.prep, "categorical", []) or [])
    kept = df.select([c for c in df.columns if c not in inputs])
    if run.prep.task == "language_model":
        return kept.with_columns(**continuations(run, sm, task, x, batch_size))
    if run.prep.task == "seq2seq":
        return kept.with_columns(**generated_targets(run, sm, task, x, batch_size))
    out = outputs(sm, x, batch_size)
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


def continuations(run: SavedRun, sm, task, x: np.ndarray, batch_size: int) -> dict[str, pl.Series]:
    """A language model's columns: each row's perplexity and its greedy continuation."""
    import jax

    from dlexp.data import text
    from dlexp.tasks import make_predict

    forward = make_predict(sm)
    losses = jax.jit(lambda p, r, xb: task.loss(forward(p, r, xb), xb))
    nll = np.concatenate(
        [np.asarray(o)[:k] for o, k in batched(lambda xb: losses(sm.params, sm.rest, xb), (x,), batch_size)]
    )
    ends = np.where((x == text.EOS_ID).any(axis=1), (x == text.EOS_ID).argmax(axis=1), x.shape[1])
    prompts = np.where(np.arange(x.shape[1]) < ends[:, None], x, text.PAD_ID).astype(np.int32)  # without [EOS]
    sample = jax.jit(task.make_sampler(sm, 0.0))
    key = jax.random.key(0)
    parts = batched(lambda p, n: sample(sm.params, sm.rest, p, n, key), (prompts, ends.astype(np.int32)), batch_size)
    ids = np.concatenate([np.asarray(o)[:k] for o, k in parts])
    after = np.where(np.arange(x.shape[1]) >= ends[:, None], ids, text.PAD_ID)  # the new tokens only
    return {
        "perplexity": pl.Series(np.exp(np.minimum(nll, 700.0)).astype(np.float32)),
        "generated": pl.Series(text.decode(run.prep.trained_tokenizer, after), dtype=pl.String),
    }


def generated_targets(run: SavedRun, sm, task, x: np.ndarray, batch_size: int) -> dict[str, pl.Series]:
    """A seq2seq model's columns: each row's target text, decoded greedily and by beam search."""
    import jax

    from dlexp.data import text
    from dlexp.hooks.translations import decode_rows

    length = int(run.prep.tokenizer["max_length"])
    beam_size = int((run.cfg.callbacks.get("translations") or {}).get("beam_size", 4))
    columns = {}
    for name, k in (("generated", 1), ("generated_beam", max(beam_size, 1))):
        decoder = jax.jit(task.make_decoder(sm, length, k))
        ids = decode_rows(decoder, sm.params, sm.rest, x, batch_size)
        columns[name] = pl.Series(text.decode(run.prep.trained_tokenizer, ids), dtype=pl.String)
    return columns


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
