"""Sweep figures: a metric against one swept hyperparameter, and the objective's curve per job.

A hyperparameter whose values span two decades or more (a learning rate from 1e-5 to 1e-1)
goes on a log axis; ticks are few and short so their labels never run into each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from dlexp.figures.style import HEIGHT, new_figure, spans, styled

LOG_SPAN = 100  # max/min of the positive values at which the axis turns logarithmic
TICKS = 6  # at most this many labelled ticks on a hyperparameter's axis
LEGEND_MAX = 16  # more jobs than this: the lines speak without a legend


def hparam_axis(ax: Axes, values: Sequence) -> np.ndarray:
    """The x position of each job: the value on a linear axis (few short labels) or a log one
    (10^k, or powers of two written out), or the index of its category (text values)."""
    if numbers(values):
        x = np.asarray(values, dtype=float)
        if spans(x, LOG_SPAN):
            twos = bool(np.all((x >= 1) & (np.exp2(np.round(np.log2(x))) == x)))  # batch sizes, widths
            ax.set_xscale("log", base=2 if twos else 10)
            ax.xaxis.set_major_locator(LogLocator(base=2 if twos else 10, numticks=TICKS))
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels are what crowded the axis
            if twos:
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=TICKS - 1, steps=[1, 2, 5, 10]))
            ax.xaxis.set_major_formatter(FuncFormatter(compact))
        return x
    cats = sorted({str(v) for v in values})
    tilt = max(map(len, cats), default=0) * len(cats) > 60  # about the characters that fit side by side
    ax.set_xticks(range(len(cats)), cats, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_xlim(-0.5, len(cats) - 0.5)
    return np.array([cats.index(str(v)) for v in values], dtype=float)


def numbers(values: Sequence) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


@styled()
def metric_vs_hparam(
    values: Sequence,
    scores: Sequence[float] | np.ndarray,
    *,
    hparam: str,
    metric: str,
    best: int | None = None,
    groups: Sequence[str] | None = None,
) -> Figure:
    """Each job as a point: the hyperparameter's value against the metric, one colour (and
    line) per combination of the other swept keys (`groups`); the best job starred."""
    legend = best is not None or len(set(groups or [""])) > 1
    fig, axes = new_figure(6.5 if legend else 5.5, HEIGHT)
    ax = axes[0, 0]
    x = hparam_axis(ax, values)
    numeric = numbers(values)
    y = np.asarray(scores, dtype=float)
    names = short_labels(list(groups)) if groups else [""] * len(x)
    for g in dict.fromkeys(names):
        idx = sorted((i for i, gi in enumerate(names) if gi == g), key=lambda i: x[i])
        ax.plot(x[idx], y[idx], marker="o", ms=5, alpha=0.85, ls="-" if numeric else "", label=g or None)
    if best is not None:
        ax.scatter([x[best]], [y[best]], marker="*", s=220, color="tab:red", label="best", zorder=3)
    ax.set(xlabel=hparam, ylabel=metric, title=f"{metric} against {hparam}")
    ax.grid(True)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))
    return fig


@styled()
def curves_per_job(curves: dict[str, pl.DataFrame], tag: str) -> Figure:
    """One line per job: how `tag` (the objective) moved during each run of a sweep; the
    legend beside the axes, its keys shortened where that stays unambiguous."""
    shown = len(curves) <= LEGEND_MAX
    fig, axes = new_figure(7.5 if shown else 5.5, HEIGHT)
    ax = axes[0, 0]
    for label, table in zip(short_labels(list(curves)), curves.values()):
        rows = table.filter(pl.col("tag") == tag).sort("step")
        if rows.height:
            ax.plot(rows["step"], rows["value"], marker="o", ms=2, label=label)
    ax.set(xlabel="step", ylabel=tag, title=f"{tag} per job")
    ax.grid(True)
    if shown and ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))
    return fig


def short_labels(labels: list[str]) -> list[str]:
    """'optimizer.lr=0.001 model.hidden=[16]' -> 'lr=0.001 hidden=[16]' when no two keys
    share their last part; otherwise the labels as they are."""
    keys = {k for label in labels for k in re.findall(r"(?:^|\s)([\w.\-/]+)=", label)}
    short = {k: k.rsplit(".", 1)[-1] for k in keys}
    if len(set(short.values())) < len(keys):
        return labels
    return [
        re.sub(r"(^|\s)([\w.\-/]+)=", lambda m: m.group(1) + short.get(m.group(2), m.group(2)) + "=", s) for s in labels
    ]


def compact(value: float, _pos: object = None) -> str:
    """A tick label: '%g' without the exponent's padding (1e-05 -> 1e-5, 1e+06 -> 1e6)."""
    return f"{value:.3g}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
