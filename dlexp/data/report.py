"""The data report: what the preparation did, counted per split, and its text form
(printed at the start of a run and written to TensorBoard as text)."""

from __future__ import annotations

from typing import Any

import polars as pl

from dlexp.data import clean


def counts(parts: dict[str, Any], prep) -> dict[str, Any]:
    """Nulls filled and outliers clipped per column, and class balance, for each split."""
    out: dict[str, Any] = {"nulls_filled": {}, "outliers_clipped": {}, "class_balance": {}}
    for split, part in parts.items():
        lf = part.lazy()
        exprs = [pl.col(c).null_count().alias(f"n:{c}") for c in prep.fills]
        filled = lf.with_columns([clean.fill_expr(c, prep.fills) for c in prep.fills])
        for c, (lo, hi) in prep.bounds.items():
            v = pl.col(c).cast(pl.Float64)
            exprs.append(((v < lo) | (v > hi)).sum().alias(f"o:{c}"))
        exprs.append(pl.len().alias("rows"))
        row = filled.select(exprs[len(prep.fills):]).collect(engine="streaming").row(0, named=True)
        nulls = lf.select(exprs[: len(prep.fills)]).collect(engine="streaming").row(0, named=True) if prep.fills else {}
        out["nulls_filled"][split] = {k[2:]: int(v) for k, v in nulls.items() if v}
        out["outliers_clipped"][split] = {k[2:]: int(v) for k, v in row.items() if k.startswith("o:") and v}
        if split == "train":
            out["train_rows"] = int(row["rows"])
        if prep.task == "classification":
            bal = lf.group_by(prep.label).len().collect(engine="streaming")
            out["class_balance"][split] = {str(k): int(n) for k, n in sorted(bal.iter_rows(), key=lambda r: str(r[0]))}
    return out


def report_text(prep: dict[str, Any]) -> str:
    """A few readable lines from prep.json's `source` and `report` entries."""
    src, rep = prep.get("source", {}), prep.get("report", {})
    lines = [f"source: {src.get('path')} ({src.get('rows')} rows read)"]
    if src.get("split"):
        lines.append(f"split: {src['split']} (seed {src.get('seed')}), rows {src.get('sizes')}"
                     + (" [train streamed from disk]" if src.get("streamed") else ""))
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
