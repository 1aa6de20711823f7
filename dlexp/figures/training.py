"""Learning curves: how a run's metrics moved during training."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from matplotlib.figure import Figure

from dlexp.figures.style import new_figure, spans, styled

SPLIT_STYLE = {"train": dict(color="tab:blue", alpha=0.8), "val": dict(color="tab:orange", marker="o", ms=3)}


@styled()
def learning_curves(
    curves: pl.DataFrame,
    metrics: Sequence[str],
    *,
    title: str = "",
    best_step: int | None = None,
    test: dict | None = None,
) -> Figure:
    """One panel per metric: train and val against step, the test value and the best step
    marked. `curves`: (tag, step, value) rows, tags such as val/loss."""
    fig, axes = new_figure(4.2 * len(metrics), 3.6, 1, len(metrics))
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
        if m == "loss" and spans(values, 30):
            ax.set_yscale("log")  # a loss that fell by orders of magnitude: the late part stays readable
        ax.set(title=m, xlabel="step", ylabel=m)
        ax.grid(True)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig
