"""Preparing a table shard by shard: each process reads only its shards' rows (shards.py).

The table's steps stay those of `dlexp.data.table`, cut by shard: the key columns are read
whole and split globally; the features are read per owned shard; the scaling is fitted per
shard and combined across every shard (`shards.exchange`); each shard's rows are then
prepared with the same `Prep` as a single process would save in prep.json, so
`dlexp.evaluate` and `dlexp.predict` read a sharded run like any other.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import polars as pl

from dlexp.data import report, shards
from dlexp.data.checks import check_values
from dlexp.data.dataset import SPLITS, Dataset
from dlexp.data.gather import take_frame
from dlexp.data.prep import Prep, category_values, safe_scale
from dlexp.data.sources import detect_format, resolve_files, scan_files
from dlexp.errors import DataError

log = logging.getLogger("dlexp")


def shardable(cols, rules: dict[str, Any], *, dedupe: bool, outliers, scale: str, spec: shards.ShardSpec) -> bool:
    """Whether a preparation fitted shard by shard combines exactly. Where it does not: an
    error naming why if the user asked for shards, else a log line (every process reads all)."""
    why = []
    if cols.image or cols.sequence or cols.text:
        why.append("image, sequence and text columns (their shapes, encodings and tokenizer are fitted on every row)")
    if dedupe:
        why.append("dataset.dedupe (a duplicate can sit in another shard)")
    if outliers:
        why.append("dataset.outliers (quantile bounds do not combine from shards)")
    filled = sorted(c for c, r in rules.items() if r != "error")
    if filled:
        why.append(f"dataset.missing other than error (for {', '.join(filled[:3])}: fills and drops move rows)")
    if scale not in shards.SHARDABLE_SCALES:
        why.append(f"dataset.scale={scale} (choose one of {', '.join(shards.SHARDABLE_SCALES)})")
    if why and spec.explicit:
        raise DataError(
            f"trainer.data_shards={spec.count}: each process prepares only its own rows, which rules out "
            + "; ".join(why)
            + ". Set trainer.data_shards=1 to read the whole table in every process"
        )
    if why:
        log.info("data: every process reads the whole table, since shards rule out %s", "; ".join(why))
    return not why


def file_rows(path: str, fmt: str) -> tuple[list[str], str, list[int]]:
    """The files behind `path`, their format and row counts (Parquet / IPC: from the footer)."""
    files = resolve_files(path)
    fmt = detect_format(files, fmt)
    return files, fmt, [int(scan_files([f], fmt).select(pl.len()).collect().item()) for f in files]


def prepare_shards(
    *,
    path: str,
    fmt: str,
    features: list[str],
    keys: pl.DataFrame,
    idx: dict[str, np.ndarray],
    row_labels: np.ndarray | None,
    template: Prep,
    rules: dict[str, Any],
    floats: list[str],
    source: dict[str, Any],
    streaming: bool,
    cache_dir: str | None,
    spec: shards.ShardSpec,
) -> Dataset:
    """The owned shards of the table, prepared with statistics fitted over every shard."""
    files, fmt, counts = file_rows(path, fmt)
    if sum(counts) != len(keys):
        raise DataError(f"{path}: its files hold {sum(counts)} rows but {len(keys)} were read; was it changed?")
    bounds = shards.shard_bounds(counts, spec.count)
    prep = Prep.from_dict(template.to_dict())
    frames, rows = {}, {}
    for p in spec.owned:
        lo, hi = bounds[p]
        # lazy throughout: checked, fitted and cut as Polars reads it, never held whole
        frame = shards.read_range(files, counts, lambda fs: scan_files(fs, fmt), lo, hi).select(features)
        frame = check_values(
            frame, label=template.label, floats=[c for c in floats if c in features], rules=rules, path=path
        )
        frames[p] = frame.with_row_index("__row") if streaming else frame
        rows[p] = {s: shards.local_rows(idx[s], lo, hi) for s in SPLITS}
    trains = {p: take_frame(frames[p], rows[p]["train"], streaming, bounds[p][1] - bounds[p][0]) for p in spec.owned}

    # ------------------------------------------------------------------ fit: per shard, combined
    local = np.stack([shards.partial_stats(trains[p], prep.features, prep.scale) for p in spec.owned])
    prep.stats = shards.combine_stats(shards.exchange(local, spec), prep.features, prep.scale)
    if prep.categorical:
        seen = [{c: category_values(trains[p], c) for c in prep.categorical} for p in spec.owned]
        prep.categories = shards.union_categories(seen, spec)
    label = keys.get_column(prep.label)
    if prep.task == "regression":  # the label is a key column: its train rows are here whole
        y_train = label.cast(pl.Float64).to_numpy()[idx["train"]]
        prep.target = {"mean": float(y_train.mean()), "std": safe_scale(float(y_train.std()))}
    y_all = row_labels.astype(np.int32) if row_labels is not None else prep.transform_label(label)
    w_all = prep.transform_weight(keys)

    # ------------------------------------------------------------------ each owned shard, prepared
    xs: dict[str, list] = {s: [] for s in SPLITS}
    streams = []
    for p in spec.owned:
        lo, hi = bounds[p]
        if streaming:
            from dlexp.data.stream import write_train_stream

            tag = hashlib.sha1(f"{_tag(files, idx['train'])}:shard {p} of {spec.count}".encode()).hexdigest()
            streams.append(write_train_stream(trains[p], prep, cache_dir, tag))
            xs["train"].append(None)
            for s in ("val", "test"):
                part = take_frame(frames[p], rows[p][s], True, hi - lo).collect(engine="streaming")
                xs[s].append(prep.transform_x(part))
        else:
            cut = prep.transform_rows(frames[p], rows[p])
            for s in SPLITS:
                xs[s].append(cut[s])
    mine = {
        s: [idx[s][np.searchsorted(idx[s], lo) : np.searchsorted(idx[s], hi)] for lo, hi in _owned(bounds, spec)]
        for s in SPLITS
    }
    local_shards = shards.LocalShards(
        spec=spec,
        bounds=bounds,
        sizes={
            s: [int(np.searchsorted(idx[s], hi) - np.searchsorted(idx[s], lo)) for lo, hi in bounds] for s in SPLITS
        },
        x=xs,
        y={s: [y_all[r] for r in mine[s]] for s in SPLITS},
        w={s: [w_all[r] for r in mine[s]] for s in SPLITS} if w_all is not None else None,
        streams=streams or None,
    )
    return _dataset(prep, local_shards, idx, row_labels, source, streaming)


def _owned(bounds: list[tuple[int, int]], spec: shards.ShardSpec) -> list[tuple[int, int]]:
    return [bounds[p] for p in spec.owned]


def _tag(files: list[str], train_rows: np.ndarray) -> str:
    """Names the source's train rows, for the stream cache (as `table` names a whole table's)."""
    import os

    h = hashlib.sha1(train_rows.tobytes())
    for f in files:
        st = os.stat(f)
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _dataset(prep: Prep, local: shards.LocalShards, idx, row_labels, source, streaming: bool) -> Dataset:
    """The Dataset of this process's shards: its arrays are the owned shards' rows, in order
    (one process holding every shard: the whole split, in the order an unsharded run has)."""

    def joined(parts: list) -> np.ndarray | None:
        if any(p is None for p in parts):
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)  # one shard: no copy

    info = prep.to_dict()
    sizes = {s: sum(local.sizes[s]) for s in SPLITS}
    info["source"] = {
        **source,
        "sizes": sizes,
        "streamed": streaming,
        "shards": {"count": local.spec.count, "bounds": [list(b) for b in local.bounds], "sizes": local.sizes},
    }
    found = report.counts(pl.LazyFrame(), idx, prep, row_labels)  # nothing is filled or clipped when sharded
    info["report"] = {**found, "rows": sizes, "dropped": source["dropped"]}
    t = prep.target
    return Dataset(
        x={s: joined(local.x[s]) for s in SPLITS},  # type: ignore[misc]  (a streamed train split is None)
        y={s: joined(local.y[s]) for s in SPLITS},  # type: ignore[misc]
        task=prep.task,
        classes=prep.classes,
        target_scale=(t.get("mean", 0.0), t.get("std", 1.0)),
        prep=info,
        weights={s: joined(local.w[s]) for s in SPLITS} if local.w is not None else None,  # type: ignore[misc]
        shards=local,
    )
