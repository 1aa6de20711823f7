"""The one look of dlexp's figures: rcParams, DPI and the Agg canvas, applied in one place.

TensorBoard shows an image at its size in pixels in a card about 500 px wide, so a single
panel is 5 x 4 inches at 100 DPI with fonts of 9-11 pt; report PNGs use the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

DPI = 100
WIDTH, HEIGHT = 5.0, 4.0  # one panel: 500 x 400 px
STYLE: dict[RcKeyType, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (WIDTH, HEIGHT),
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.constrained_layout.use": True,  # colorbars and legends outside the axes get their room
    "font.size": 10,
    "axes.titlesize": 11,
    "figure.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "grid.alpha": 0.3,
    "image.cmap": "Blues",
}


@contextmanager
def styled() -> Iterator[None]:
    """The style as a context manager or a decorator: fonts are read when an artist is made
    and ticks when the figure is drawn, so both building and drawing run inside it."""
    with matplotlib.rc_context(STYLE):
        yield


@styled()
def new_figure(
    width: float = WIDTH, height: float = HEIGHT, nrows: int = 1, ncols: int = 1
) -> tuple[Figure, np.ndarray]:
    """A Figure on an Agg canvas and its [nrows, ncols] axes: no pyplot, so nothing global to
    close and no display needed."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, np.asarray(fig.subplots(nrows, ncols, squeeze=False))


def render(fig: Figure) -> FigureCanvasAgg:
    """Draws `fig` in the style: its text has its final place and size afterwards."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    with styled():
        canvas.draw()
    return canvas


def to_array(fig: Figure) -> np.ndarray:
    """The figure as an [H, W, 3] uint8 image, what TensorBoard's image summary takes."""
    return np.asarray(render(fig).buffer_rgba())[..., :3].copy()


def save(fig: Figure, path: str) -> str:
    with styled():
        fig.savefig(path)
    return path


def spans(values: Sequence[float] | np.ndarray, ratio: float) -> bool:
    """Whether the finite values are all positive and max/min >= ratio: a log axis fits."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool(np.all(v > 0)) and v.max() / v.min() >= ratio
