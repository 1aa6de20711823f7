"""The report's PNG figures (matplotlib, no display needed): one function per figure.

Each takes plain data (Polars frames, lists) and a path, so the report decides what
to plot and these only decide how it looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless machine and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

SPLIT_STYLE = {"train": dict(color="tab:blue", alpha=0.8), "val": dict(color="tab:orange", marker="o", ms=3)}


def save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(
    curves: pl.DataFrame,
    metrics: Sequence[str],
    path: str,
    *,
    title: str = "",
    best_step: int | None = None,
    test: dict | None = None,
) -> str:
    """One panel per metric: train and val against step, the test value and the best step marked."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for split, style in SPLIT_STYLE.items():
            rows = curves.filter(pl.col("tag") == f"{split}/{m}").sort("step")
            if rows.height:
                ax.plot(rows["step"], rows["value"], label=split, **style)
        if test and m in test:
            ax.axhline(test[m], color="tab:green", ls=":", label=f"test {test[m]:.4g}")
        if best_step is not None and best_step >= 0:
            ax.axvline(best_step, color="grey", ls="--", lw=0.8, label="best step")
        values = curves.filter(pl.col("tag").is_in([f"train/{m}", f"val/{m}"]))["value"].to_numpy()
        if m == "loss" and positive(values) and values.max() / values.min() > 30:
            ax.set_yscale("log")  # a loss that fell by orders of magnitude: the late part stays readable
        ax.set_title(m)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def confusion(matrix: Sequence[Sequence[float]], classes: Sequence, path: str, *, title: str = "") -> str:
    """Rows: true class, columns: predicted; colour is the row fraction, numbers are counts."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(1, keepdims=True)
    frac = cm / np.where(rows > 0, rows, 1)  # not max(rows, 1): summed sample weights may be < 1
    n = len(cm)
    size = min(2.0 + 0.55 * n, 12)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{cm[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black",
                    )
    labels = [str(c) for c in classes]
    ax.set_xticks(range(n), labels, rotation=90 if max(map(len, labels), default=0) > 3 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"confusion matrix (accuracy {np.trace(cm) / (cm.sum() or 1):.3f})")
    return save(fig, path)


def metric_vs_hparam(
    values: Sequence,
    scores: Sequence[float],
    path: str,
    *,
    hparam: str,
    metric: str,
    best: int | None = None,
    groups: Sequence[str] | None = None,
) -> str:
    """Each job as a point: the hyperparameter's value against the metric, one colour (and
    line) per combination of the other swept keys (`groups`); the best job starred."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        x = np.asarray(values, dtype=float)
        if positive(x) and x.max() / x.min() >= 10:
            ax.set_xscale("log")
    else:
        cats = sorted({str(v) for v in values})
        x = np.array([cats.index(str(v)) for v in values], dtype=float)
        ax.set_xticks(range(len(cats)), cats, rotation=30 if max(map(len, cats)) > 8 else 0)
        ax.set_xlim(-0.5, len(cats) - 0.5)
    y = np.asarray(scores, dtype=float)
    groups = list(groups) if groups else [""] * len(x)
    for g in dict.fromkeys(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        idx.sort(key=lambda i: x[i])
        ax.plot(x[idx], y[idx], marker="o", ms=5, alpha=0.85, ls="-" if numeric else "", label=g or None)
    if best is not None:
        ax.scatter([x[best]], [y[best]], marker="*", s=220, color="tab:red", label="best", zorder=3)
    ax.set_xlabel(hparam)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {hparam}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(fig, path)


def curves_per_job(curves: dict[str, pl.DataFrame], tag: str, path: str) -> str:
    """One line per job: how `tag` (the objective) moved during each run of a sweep."""
    fig, ax = plt.subplots(figsize=(8.5, 4))
    for label, table in curves.items():
        rows = table.filter(pl.col("tag") == tag).sort("step")
        if rows.height:
            ax.plot(rows["step"], rows["value"], marker="o", ms=2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(tag)
    ax.set_title(f"{tag} per job", fontsize=10)
    ax.grid(alpha=0.3)
    if 0 < len(curves) <= 16:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(fig, path)


def positive(values) -> bool:
    v = np.asarray(values, dtype=float)
    return v.size > 0 and bool(np.all(v[np.isfinite(v)] > 0)) and not math.isnan(float(np.nanmin(v)))
