"""The generic data set: any table Polars can scan, a label column, feature columns.

Every source ends here, built-in data sets included (they are written to Parquet
once and read back through this path), so a user's file gets the same checks,
cleaning, splits and preparation as the examples. The steps, in order: resolve the
feature spec (columns.py), check nulls and infs (checks.py), drop duplicate / null
rows, split (splits.py), fit the preparation on the train rows (prep.py), transform
every row once and cut the arrays by split, report (report.py). Float32 features under
the default preparation skip collecting the table: the cut reads the file batch by batch
and the features' checks ride on the sums it computes (`_in_one_pass`, gather.NotFinite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from dlexp.data import clean, report, splits
from dlexp.data.checks import check_values
from dlexp.data.columns import resolve
from dlexp.data.dataset import SPLITS, Dataset
from dlexp.data.gather import NotFinite, take_frame
from dlexp.data.prep import Prep
from dlexp.data.shard_prep import prepare_shards, shardable
from dlexp.data.shards import ShardSpec
from dlexp.data.sources import collect, has_rows, reading, scan
from dlexp.data.text import TokenizerConfig
from dlexp.errors import DataError

TASKS = ("auto", "classification", "regression")
LANGUAGE_MODEL = "language_model"  # the task of text without a label (dataset.label=null)
SEQ2SEQ = "seq2seq"  # the task of a source text column and a target one (dataset.target_text)


def _names_unreadable_rows(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
    """A row Polars cannot parse (found only when it is read) becomes a DataError naming the file."""

    @functools.wraps(fn)
    def wrapped(**kw: Any) -> Dataset:
        with reading(kw["path"], kw.get("format", "auto")):
            return fn(**kw)

    return wrapped


@_names_unreadable_rows
def table(
    *,
    path: str,
    label: str | None,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    encode: str = "onehot",
    image: str | None = None,
    image_shape: list[int] | None = None,
    skip_bad: bool = False,
    sequence: list[str] | None = None,
    sequence_length: int | None = None,
    text: list[str] | None = None,
    tokenizer: dict | None = None,
    target_text: str | None = None,
    weight: str | None = None,
    drop: list[str] | None = None,
    format: str = "auto",
    task: str = "auto",
    missing: Any = "error",
    outliers: str | None = None,
    outlier_threshold: float | None = None,
    outlier_action: str = "clip",
    dedupe: bool = False,
    split: str = "stratified",
    split_column: str | None = None,
    time_column: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    scale: str = "standard",
    stream: Any = "auto",
    max_resident_mb: float = 2048.0,
    augment: dict | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
    shards: ShardSpec | None = None,
) -> Dataset:
    """Reads `path`, cleans it, splits it with `seed`, and prepares it (fitted on train).

    features / categorical / sequence / drop: column names or `^regex$` patterns;
    features=None means every column not named elsewhere. image: an Array / List column
    of pixels, reshaped to image_shape [H, W, C]; with plain pixel columns, image_shape
    alone reshapes the features. An image column of PNG / JPEG bytes (Binary, or Hugging
    Face's struct{bytes, path}) is decoded once and cached (images.py); skip_bad leaves out
    and counts the images that do not decode, instead of stopping.
    text: one String column, tokenized as `tokenizer` says
    ({kind, vocab_size, max_length, lowercase, normalize}: dlexp/data/text.py); with
    label=None it is a language model's data. target_text: a String column of target
    text for the text column (seq2seq; label=None), tokenized by the same tokenizer.
    missing / outliers: see dlexp/data/clean.py.
    split: random | stratified | column (split_column holds train/val/test) | time
    (time_column orders the rows). stream: auto | true | false (auto: stream when the
    prepared train split would exceed max_resident_mb). augment: {flip, crop, rotate}
    for images, applied on device to training batches only (dlexp/data/augment.py).
    shards: read only this process's shards of the rows (trainer.data_shards; shard_prep.py).
    """
    from dlexp.data.images import decoded_source

    lf, undecodable = decoded_source(
        scan(path, format), path, image, image_shape, skip_bad=skip_bad, cache_dir=cache_dir
    )  # encoded images: their decoded, cached table
    schema = lf.collect_schema()
    if not has_rows(lf):  # before the columns: a header-only CSV's columns all read as text
        raise DataError(f"{path} has no rows (columns: {', '.join(schema.names())}); it needs a row per example")
    if text:
        TokenizerConfig.from_node(tokenizer)  # a bad option is named before the file is read
    _check_target_text(target_text, text, label, schema, path)
    extra = tuple(c for c in (split_column, time_column, target_text) if c)  # target_text: read, not a feature
    for key, c in (("split_column", split_column), ("time_column", time_column)):
        if c is not None and c not in schema:
            raise DataError(f"dataset.{key}={c!r} is not a column of {path}; columns: {', '.join(schema.names())}")
    cols = resolve(
        schema,
        path,
        label=label,
        features=features,
        categorical=categorical,
        image=image,
        sequence=sequence,
        text=text,
        weight=weight,
        drop=drop,
        exclude=extra,
        frame=lf,
    )
    if image_shape is not None and not image and not sequence and int(np.prod(image_shape)) != len(cols.numeric):
        raise DataError(
            f"dataset.image_shape={list(image_shape)} holds {int(np.prod(image_shape))} values "
            f"but there are {len(cols.numeric)} feature columns"
        )
    if cols.categorical and image_shape is not None and not image:
        raise DataError("dataset.image_shape reshapes numeric pixel columns; it cannot hold categorical columns")
    rules = clean.missing_rules(missing, cols.numeric + cols.categorical, cols.numeric)
    sharded = (
        shards is not None
        and shards.sharded
        and shardable(cols, rules, dedupe=dedupe, outliers=outliers, scale=scale, spec=shards)
    )
    if shards is not None and sharded:
        max_resident_mb *= shards.count / len(shards.owned)  # what this process holds: its shards
    lf = lf.select(list(dict.fromkeys(cols.all + list(extra))))
    streaming = _should_stream(stream, lf, cols, image_shape, max_resident_mb)
    # without a label the text column stands in as a key: it gives the key table its rows
    keyed: list[str] = [label] if label else cols.text
    key_cols: list[str] = list(dict.fromkeys([*keyed, *extra, *([cols.weight] if cols.weight else [])]))
    labelled: list[str] = [label] if label else []
    floats = [c for c in dict.fromkeys(labelled + cols.numeric) if schema[c].is_float()]

    # ------------------------------------------------------------------ rows
    if sharded or (not streaming and _in_one_pass(schema, cols, rules, dedupe, outliers, scale)):
        # read as it is cut, its values checked there (gather.NotFinite: checked whole below);
        # sharded: only the key columns here, each shard's features by its process
        frame = lf
        keys = check_values(
            collect(lf.select(key_cols), path, format),
            label=label or "",
            floats=[c for c in floats if c in key_cols],
            rules=rules,
            path=path,
        )
        n_read = keys.height
    else:
        frame = lf if streaming else collect(lf, path, format)  # read once
        frame = check_values(frame, label=label or "", floats=floats, rules=rules, path=path)  # NaN made null
        keys, n_read = None, _height(frame)
    if n_read == 0:
        raise DataError(f"{path} has no rows")
    dropped = {"undecodable images": undecodable} if undecodable else {}
    if dedupe:
        frame = frame.unique(maintain_order=True, keep="first")
        dropped["duplicates"] = n_read - _height(frame)
    drop_cols = [c for c, r in rules.items() if r == "drop"]
    if drop_cols:
        before = _height(frame)
        frame = frame.drop_nulls(subset=drop_cols)
        dropped["rows with nulls"] = before - _height(frame)
    if streaming:
        frame = frame.with_row_index("__row")

    # ------------------------------------------------------------------ split
    if keys is None:
        keys = _collect_columns(frame, key_cols, path)
    if label is None:
        task = SEQ2SEQ if target_text else _language_model(task)
        y_all = pl.Series(label, np.zeros(len(keys), np.int32))
    else:
        y_all = keys.get_column(label)
        task = _infer_task(task, y_all)
    classes = sorted(y_all.unique().to_list()) if task == "classification" else None
    row_labels = y_all.replace_strict({v: i for i, v in enumerate(classes)}).to_numpy() if classes else None
    if split == "column":
        if not split_column:
            raise DataError("dataset.split=column needs dataset.split_column (a column holding train / val / test)")
        idx = splits.by_column(keys.get_column(split_column).cast(pl.String).to_numpy(), split_column, path)
    elif split == "time":
        if not time_column:
            raise DataError("dataset.split=time needs dataset.time_column (the column that orders the rows)")
        idx = splits.by_time(
            keys.get_column(time_column).to_physical().to_numpy(), val=val_fraction, test=test_fraction
        )
    else:
        idx = splits.split_indices(
            len(keys),
            val=val_fraction,
            test=test_fraction,
            seed=seed,
            method=split if task == "classification" else "random",
            labels=row_labels,
        )
    if classes is not None and row_labels is not None:
        _check_two_classes(str(label), classes, row_labels[idx["train"]], path)

    template = Prep(
        cols.numeric,
        label or "",
        task,
        scale,
        classes=classes,
        image_shape=list(image_shape) if image_shape else None,
        categorical=cols.categorical,
        encode=encode,
        image=cols.image,
        sequence=cols.sequence,
        sequence_length=sequence_length,
        text=cols.text,
        tokenizer=dict(tokenizer or {}) if cols.text else None,
        target_text=target_text,
        weight=cols.weight,
        outliers=outliers,
        outlier_action=outlier_action,
    )
    source = {
        "augment": dict(augment) if augment else None,
        "path": str(path),
        "rows": n_read,
        "dropped": dropped,
        "split": split,
        "seed": seed,
        "fractions": {"val": val_fraction, "test": test_fraction},
    }

    if shards is not None and sharded:
        return prepare_shards(
            path=path,
            fmt=format,
            features=cols.numeric + cols.categorical,
            keys=keys,
            idx=idx,
            row_labels=row_labels,
            template=template,
            rules=rules,
            floats=floats,
            source=source,
            streaming=streaming,
            cache_dir=cache_dir,
            spec=shards,
        )

    def prepare(rows: dict[str, np.ndarray]) -> Dataset:
        prep = Prep.from_dict(template.to_dict())
        data = _prepare(
            frame, keys, rows, row_labels, prep, rules, outlier_threshold, source, path, streaming, cache_dir
        )
        data.rows, data.row_labels = rows, row_labels
        data.resplit = None if streaming else prepare
        return data

    try:
        return prepare(idx)
    except NotFinite:  # a null, NaN or inf among the features (or float32 sums too large): the whole table's checks
        frame = check_values(collect(lf, path, format), label=label or "", floats=floats, rules=rules, path=path)
        return prepare(idx)


def _prepare(
    frame, keys: pl.DataFrame, rows, row_labels, prep: Prep, rules, threshold, source, path, streaming: bool, cache_dir
) -> Dataset:
    """Fits `prep` on the train rows of `frame` and prepares every split.

    Resident: the arrays are cut by row index and prepared as they are cut
    (`Prep.transform_rows`). Streamed: the train split is written prepared to disk, val / test are
    read and transformed one by one. `keys`: the label, weight, split and time columns of
    every row of `frame`.
    """
    n = len(keys)
    rows = {s: rows[s] for s in SPLITS}
    if len(rows["train"]) == 0:
        raise DataError(
            f"the train split of {path} is empty ({source['rows']} rows; sizes "
            f"{ {s: len(r) for s, r in rows.items()} })"
        )
    train = take_frame(frame, rows["train"], streaming, n)
    if prep.text:
        texts = [train.lazy().select(pl.col(c).alias("text")) for c in [prep.text[0], prep.target_text] if c]
        prep.fit_tokenizer(pl.concat(texts).collect().to_series(), cache_dir)  # seq2seq: source and target
    if prep.sequence and prep.sequence_length is None:
        lengths = train.lazy().select(pl.max_horizontal([pl.col(c).list.len().max() for c in prep.sequence]))
        prep.sequence_length = int(lengths.collect().item() or 1)
    prep.fit(
        train.lazy(), rules=rules, threshold=threshold, defer_moments=not streaming
    )  # resident: moments in the cut
    found = report.counts(_with_split_numbers(frame, rows, n, streaming), rows, prep, row_labels)
    drop_outliers = bool(prep.bounds) and prep.outlier_action == "drop"
    if streaming:
        xs, ys, ws, train_stream = _streamed_arrays(frame, n, train, rows, prep, source, cache_dir, drop_outliers)
    else:
        keep = rows["train"]
        if drop_outliers:
            keep = keep[~_outlier_rows(frame, prep)[keep]]
        xs, ys, ws = _resident_arrays(frame, keys, {**rows, "train": keep}, prep, row_labels, cache_dir)
        train_stream = None
    info = prep.to_dict()
    info["source"] = {**source, "sizes": {s: int(len(ys[s])) for s in SPLITS}, "streamed": streaming}
    dropped = {"train outliers": len(rows["train"]) - len(ys["train"])} if drop_outliers else {}
    info["report"] = {**found, "rows": info["source"]["sizes"], "dropped": {**source["dropped"], **dropped}}
    t = prep.target
    return Dataset(
        x=xs,  # type: ignore[arg-type]  (a streamed train split is None: it stays on disk)
        y=ys,
        task=prep.task,
        classes=prep.classes,
        target_scale=(t.get("mean", 0.0), t.get("std", 1.0)),
        prep=info,
        weights=ws if prep.weight else None,  # type: ignore[arg-type]  (with a weight column every split has them)
        stream=train_stream,
        tokenizer=prep.trained_tokenizer,
    )


def _resident_arrays(frame, keys: pl.DataFrame, rows: dict[str, np.ndarray], prep: Prep, row_labels, cache_dir):
    """x, y, weights per split, cut by row index (x row-major, scaled as it is cut).
    row_labels: every row's class id, already computed for the split (None: regression).
    Text: token ids of every row, encoded once (or read from the cache), then cut."""
    if prep.text:
        ids = prep.text_ids(frame, cache_dir)
        xs = {s: ids[idx] for s, idx in rows.items()}
    else:
        xs = prep.transform_rows(frame, rows)
    y = row_labels.astype(np.int32) if row_labels is not None else prep.labels(keys, cache_dir)
    w = prep.transform_weight(keys)
    ys = {s: y[idx] for s, idx in rows.items()}
    ws = {s: (w[idx] if w is not None else None) for s, idx in rows.items()}
    return xs, ys, ws


def _streamed_arrays(
    frame: pl.LazyFrame, n: int, train: pl.LazyFrame, rows, prep: Prep, source, cache_dir, drop_outliers
):
    """The train split prepared on disk (y stays in memory); val and test as arrays."""
    from dlexp.data.stream import write_train_stream

    if drop_outliers:
        train = train.with_columns([clean.fill_expr(c, prep.fills) for c in prep.fills])
        train = train.filter(~clean.outlier_mask(prep.bounds))
    stream = write_train_stream(train, prep, cache_dir, _source_tag(source["path"], rows["train"]))
    xs: dict[str, np.ndarray | None] = {"train": None}  # the train split stays on disk
    kept = train.select(prep.label, *([prep.weight] if prep.weight else [])).collect(engine="streaming")
    ys = {"train": prep.transform_label(kept.get_column(prep.label))}
    ws = {"train": prep.transform_weight(kept)}
    for s in ("val", "test"):
        part = take_frame(frame, rows[s], True, n).collect(engine="streaming")
        xs[s], ys[s] = prep.transform(part)
        ws[s] = prep.transform_weight(part)
    return xs, ys, ws, stream


def _outlier_rows(frame: pl.DataFrame, prep: Prep) -> np.ndarray:
    """bool [n]: rows with a value outside its bounds, after filling."""
    filled = frame.lazy().with_columns([clean.fill_expr(c, prep.fills) for c in prep.fills])
    return filled.select(clean.outlier_mask(prep.bounds).alias("o")).collect().to_series().to_numpy()


def _with_split_numbers(frame, rows, n: int, streaming: bool) -> pl.LazyFrame:
    """`frame` with each row's split number in `report.SPLIT` (lazy: only computed if the report needs it)."""
    numbers = pl.Series(report.SPLIT, report.split_numbers(rows, n))
    if streaming:  # the streamed frame's rows are named by `__row`
        return frame.with_columns(pl.lit(numbers).gather(pl.col("__row")).alias(report.SPLIT))
    return frame.lazy().with_columns(pl.lit(numbers))


def _source_tag(path: str, train_rows: np.ndarray) -> str:
    """Names a source's train rows: its files' names, sizes and times, and the row ids."""
    import hashlib
    import os

    from dlexp.data.sources import resolve_files

    h = hashlib.sha1(train_rows.tobytes())
    for f in resolve_files(path):
        st = os.stat(f)
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _should_stream(stream: Any, lf: pl.LazyFrame, cols, image_shape, max_resident_mb: float) -> bool:
    if stream in (True, "true"):
        if cols.image or cols.sequence or cols.text:
            raise DataError(
                "dataset.stream=true supports tabular and pixel columns; an image / sequence / text column "
                "must be resident (dataset.stream=false)"
            )
        return True
    if stream in (False, "false"):
        return False
    if stream != "auto":
        raise DataError(f"dataset.stream={stream!r} is not valid; choose auto, true or false")
    if cols.image or cols.sequence or cols.text:
        return False
    n = lf.select(pl.len()).collect(engine="streaming").item()
    width = len(cols.numeric) + len(cols.categorical)
    return n * width * 4 * 0.7 > max_resident_mb * 2**20  # ~70% of the rows are train


def _in_one_pass(schema: pl.Schema, cols, rules: dict, dedupe: bool, outliers, scale: str) -> bool:
    """Whether the resident arrays can be cut from the file as Polars reads it: nothing to
    fit before the cut but the standard scaling the cut itself sums (every feature one of
    `Prep.moment_columns`), and no fills, drops, outliers, dedupe or encodings."""
    encoded = cols.categorical or cols.image or cols.sequence or cols.text
    if dedupe or outliers or encoded or any(r != "error" for r in rules.values()):
        return False
    return Prep(cols.numeric, "", "auto", scale).moment_columns(schema) == cols.numeric


def _height(frame) -> int:
    if isinstance(frame, pl.LazyFrame):
        return int(frame.select(pl.len()).collect(engine="streaming").item())
    return frame.height


def _collect_columns(frame, names: list[str], path: str) -> pl.DataFrame:
    names = list(dict.fromkeys(names))
    if isinstance(frame, pl.LazyFrame):
        return frame.select(names).collect(engine="streaming")
    return frame.select(names)


def _check_two_classes(label: str, classes: list, train_labels: np.ndarray, path: str) -> None:
    """A classifier needs two classes to tell apart in its train rows; one would train "perfectly"."""
    found = np.unique(train_labels)
    if len(found) >= 2 or len(found) == 0:  # none: the empty train split has its own error
        return
    where = "the file" if len(classes) < 2 else "the train split"
    only = classes[int(found[0])]
    raise DataError(
        f"label column {label!r} of {path} holds one class ({only!r}) in {where}; classification needs at least "
        "two classes in the train rows: check dataset.label, add rows of the other classes, or set "
        "task=regression for a numeric target"
    )


def _language_model(task: str) -> str:
    """Text without a label trains a language model; any other task needs dataset.label."""
    if task not in ("auto", LANGUAGE_MODEL):
        raise DataError(f"task={task} needs a label column: set dataset.label (dataset.label=null is a language model)")
    return LANGUAGE_MODEL


def _check_target_text(target_text: str | None, text: list[str] | None, label: str | None, schema, path: str) -> None:
    """dataset.target_text names a String column beside a source text column and no label."""
    if target_text is None:
        return
    if target_text not in schema:
        raise DataError(
            f"dataset.target_text={target_text!r} is not a column of {path}; columns: {', '.join(schema.names())}"
        )
    if schema[target_text] != pl.String:
        raise DataError(f"dataset.target_text={target_text!r} is {schema[target_text]}; it must hold strings")
    if not text:
        raise DataError("dataset.target_text needs the source text column in dataset.text (dataset.text=[source])")
    if label is not None:
        raise DataError(f"dataset.target_text is the target of a seq2seq run; set dataset.label=null (not {label!r})")


def _infer_task(task: str, y: pl.Series) -> str:
    if task not in TASKS:
        raise DataError(f"task={task!r} is not valid; choose one of {', '.join(TASKS)}")
    if task != "auto":
        if task == "regression" and not y.dtype.is_numeric():
            raise DataError(f"task=regression needs a numeric label; {y.name!r} is {y.dtype}")
        return task
    if y.dtype.is_float() and y.n_unique() > 20:
        return "regression"
    return "classification"
