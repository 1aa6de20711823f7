"""Figures for TensorBoard and reports, drawn with matplotlib off-screen (the hooks that
write them: dlexp/hooks/plots.py).

Tags: plots/confusion_matrix, plots/roc, plots/predictions, plots/forecasts,
samples/generated, samples/reconstructions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

CHUNK = 256  # predictions in fixed-size chunks: one compiled shape
GRID_SCALE = 4  # nearest-neighbour upscaling of small images (8x8 digits) so they are visible


# ---------------------------------------------------------------------------- images


def to_display(images: np.ndarray) -> np.ndarray:
    """[n, H, W, C] scaled per image to [0, 1] (data is standardized; only the pattern matters)."""
    x = np.asarray(images, np.float32)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return (x - lo) / np.maximum(hi - lo, 1e-8)


def image_grid(images: np.ndarray, cols: int = 8, scale: int = GRID_SCALE) -> np.ndarray:
    """[n, H, W, C] -> one [rows*(H*s+1)+1, cols*(W*s+1)+1, 3] image with 1-pixel gaps, values in [0, 1]."""
    x = to_display(images)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = x[..., :3].repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, _ = x.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i]
    return grid


def figure_to_array(fig) -> np.ndarray:
    """A matplotlib figure as an [H, W, 3] uint8 array (the figure is closed)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- figures


def confusion_figure(cm: np.ndarray, classes: Sequence) -> np.ndarray:
    """Counts with row-normalized colour (recall per true class)."""
    plt = _plt()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n, 1.0 + 0.45 * n), dpi=100)
    rows = cm.sum(axis=1, keepdims=True)
    share = cm / np.where(rows > 0, rows, 1)  # not max(rows, 1): summed sample weights may be < 1
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{int(round(cm[i, j]))}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(n), [str(c) for c in classes], fontsize=7, rotation=90 if n > 6 else 0)
    ax.set_yticks(range(n), [str(c) for c in classes], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return figure_to_array(fig)


def roc_figure(
    labels: np.ndarray, scores: np.ndarray, classes: Sequence, weights: np.ndarray | None = None
) -> np.ndarray:
    """ROC curve of class 1 (binary) or of each class against the rest, with its AUC.
    `scores`: per-class log-odds (they rank like probabilities but do not saturate at 0 / 1);
    `weights`: sample weights (dataset.weight), as the roc_auc metric weighs the rows. Rows
    whose score is not finite are left out (scikit-learn refuses them; the hook warns)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.0), dpi=100)
    which = [1] if len(classes) == 2 else range(len(classes))
    for c in which:
        keep = np.isfinite(scores[:, c])
        pos, score, w = labels[keep] == c, scores[keep, c], None if weights is None else weights[keep]
        if pos.all() or not pos.any():
            continue
        fpr, tpr, _ = roc_curve(pos, score, sample_weight=w)
        auc = roc_auc_score(pos, score, sample_weight=w)
        ax.plot(fpr, tpr, lw=1.2, label=f"{classes[c]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=6 if len(which) > 4 else 8, loc="lower right")
    return figure_to_array(fig)


def predictions_figure(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, classes: Sequence) -> np.ndarray:
    """A grid of images titled 'true / predicted'; wrong predictions in red."""
    plt = _plt()
    n = len(images)
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.35 * rows), dpi=100, squeeze=False)
    shown = to_display(images)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(shown[i].squeeze(-1) if shown.shape[-1] == 1 else shown[i], cmap="gray")
        ok = labels[i] == preds[i]
        ax.set_title(f"{classes[labels[i]]} / {classes[preds[i]]}", fontsize=8, color="black" if ok else "red")
    return figure_to_array(fig)


def regression_figure(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    ax.scatter(true, pred, s=6, alpha=0.6)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    return figure_to_array(fig)


def forecast_figure(history: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """A few windows: the input steps, then the true and the predicted horizon."""
    plt = _plt()
    n = len(history)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.6), dpi=100, squeeze=False)
    for ax, h, t, p in zip(axes[0], history, true, pred):
        lb = len(h)
        ax.plot(range(lb), h, color="tab:blue", lw=1, label="input")
        ax.plot(range(lb, lb + len(t)), t, color="tab:green", marker=".", lw=1, label="true")
        ax.plot(range(lb, lb + len(p)), p, color="tab:red", marker=".", lw=1, label="predicted")
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    return figure_to_array(fig)


# ---------------------------------------------------------------------------- predictions


def predict_all(fn: Callable, params, rest, x: np.ndarray) -> np.ndarray:
    """fn(params, rest, chunk) over `x` in padded chunks of CHUNK rows, as one host array."""
    outs = []
    for start in range(0, len(x), CHUNK):
        xb = x[start : start + CHUNK]
        pad = CHUNK - len(xb)
        xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)]) if pad else xb
        outs.append(np.asarray(jax.device_get(fn(params, rest, xb)))[: CHUNK - pad])
    return np.concatenate(outs)


def is_image(shape: Sequence[int]) -> bool:
    return len(shape) == 3 and shape[-1] in (1, 3)
