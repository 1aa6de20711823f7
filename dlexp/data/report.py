"""The data report: what the preparation did, counted per split, and its text form
(printed at the start of a run and written to TensorBoard as text)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from dlexp.data import clean

SPLIT = "__split"  # the column `counts` groups by: each row's split number (-1: none)


def split_numbers(rows: dict[str, np.ndarray], n: int) -> np.ndarray:
    """int8 [n]: the position in `rows` of the split each row belongs to, -1 for none."""
    out = np.full(n, -1, np.int8)
    for i, idx in enumerate(rows.values()):
        out[idx] = i
    return out


def counts(frame: pl.LazyFrame, rows: dict[str, np.ndarray], prep, row_labels: np.ndarray | None) -> dict[str, Any]:
    """Nulls filled and outliers clipped per column, and class balance, for each split.

    `frame` holds the cleaned rows with a `SPLIT` column (`split_numbers`). The null and
    outlier counts of every split come from one group_by pass, and only when something
    is filled or clipped; class balance comes from the class ids already computed.
    """
    out: dict[str, Any] = {"nulls_filled": {}, "outliers_clipped": {}, "class_balance": {}}
    exprs = [pl.col(c).null_count().alias(f"n:{c}") for c in prep.fills]
    for c, (lo, hi) in prep.bounds.items():
        v = clean.fill_expr(c, prep.fills).cast(pl.Float64)
        exprs.append(((v < lo) | (v > hi)).sum().alias(f"o:{c}"))
    found = {}
    if exprs:
        per_split = frame.group_by(SPLIT).agg(exprs).collect(engine="streaming")
        found = {r[SPLIT]: r for r in per_split.iter_rows(named=True)}
    for i, split in enumerate(rows):
        row = found.get(i, {})
        out["nulls_filled"][split] = {k[2:]: int(v) for k, v in row.items() if k.startswith("n:") and v}
        out["outliers_clipped"][split] = {k[2:]: int(v) for k, v in row.items() if k.startswith("o:") and v}
        if prep.task == "classification" and row_labels is not None:
            n = np.bincount(row_labels[rows[split]], minlength=len(prep.classes))
            bal = {str(prep.classes[k]): int(v) for k, v in enumerate(n) if v}
            out["class_balance"][split] = dict(sorted(bal.items()))
    return out


def report_text(prep: dict[str, Any]) -> str:
    """A few readable lines from prep.json's `source` and `report` entries."""
    src, rep = prep.get("source", {}), prep.get("report", {})
    lines = [f"source: {src.get('path')} ({src.get('rows')} rows read)"]
    if src.get("split"):
        lines.append(
            f"split: {src['split']} (seed {src.get('seed')}), rows {src.get('sizes')}"
            + (" [train streamed from disk]" if src.get("streamed") else "")
        )
    dropped = {k: v for k, v in rep.get("dropped", {}).items() if v}
    lines.append(f"dropped: {dropped or 'none'}")
    for key, what in (("nulls_filled", "nulls filled"), ("outliers_clipped", "outliers clipped")):
        per = {s: v for s, v in rep.get(key, {}).items() if v}
        lines.append(f"{what}: {per or 'none'}")
    for split, bal in rep.get("class_balance", {}).items():
        total = max(sum(bal.values()), 1)
        shares = ", ".join(f"{k} {n} ({n / total:.0%})" for k, n in bal.items())
        lines.append(f"classes ({split}): {shares}")
    return "\n".join(lines)
