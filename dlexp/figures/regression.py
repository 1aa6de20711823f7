"""Regression figures: predicted against true, and a few forecast windows."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from dlexp.figures.style import HEIGHT, new_figure, styled


@styled()
def predicted_vs_true(true: np.ndarray, pred: np.ndarray, *, split: str = "test") -> Figure:
    """One point per target value; on the dotted diagonal the prediction is exact."""
    fig, axes = new_figure(HEIGHT + 0.4, HEIGHT)
    ax = axes[0, 0]
    ax.scatter(true, pred, s=6, alpha=0.6)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=1)
    ax.set(xlabel="true", ylabel="predicted", title=f"{split}: predicted against true")
    ax.grid(True)
    return fig


@styled()
def forecasts(history: np.ndarray, true: np.ndarray, pred: np.ndarray, *, split: str = "test") -> Figure:
    """A few windows, two to a row: the input steps, then the true and the predicted horizon."""
    n = len(history)
    cols = min(2, n)
    rows = -(-n // cols)
    fig, axes = new_figure(3.0 * cols, 2.4 * rows + 0.4, rows, cols)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, h, t, p in zip(axes.ravel(), history, true, pred):
        lb = len(h)
        ax.plot(range(lb), h, color="tab:blue", label="input")
        ax.plot(range(lb, lb + len(t)), t, color="tab:green", marker=".", label="true")
        ax.plot(range(lb, lb + len(p)), p, color="tab:red", marker=".", label="predicted")
        ax.set_xlabel("step")
        ax.grid(True)
    axes[0, 0].legend()
    fig.suptitle(f"{split} forecasts")
    return fig
