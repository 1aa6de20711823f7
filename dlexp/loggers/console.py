"""The results table printed at the end of a run, a cross-validation or a set of copies."""

from __future__ import annotations

from typing import Any


def summary_table(rows: dict[str, dict[str, Any]], first: str = "split") -> str:
    """A small aligned table: one row per split (or fold, copy: `first` names them), one column per metric."""
    cols: list[str] = []
    for metrics in rows.values():
        cols += [c for c in metrics if c not in cols]
    head = [first] + cols
    body = [[split] + [_fmt(m.get(c)) for c in cols] for split, m in rows.items()]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)
