"""Classification figures: the confusion matrix and ROC curves through scikit-learn's displays
(so they read as its documentation shows them), and a grid of sample predictions.
scikit-learn is imported where it is used: it takes seconds, and only classification needs it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from dlexp.figures.images import to_display
from dlexp.figures.style import WIDTH, new_figure, styled

MANY = 15  # more classes than this: no numbers in the cells, and every k-th tick label only
ROC_HEIGHT = 4.2  # the ROC axes are square: a little taller than the default panel

RocCurve = tuple[str, np.ndarray, np.ndarray, float]  # (name, fpr, tpr, auc)


@styled()
def confusion(
    cm: Sequence[Sequence[float]] | np.ndarray, classes: Sequence, *, split: str = "test", normalize: bool = False
) -> Figure:
    """Rows: true class, columns: predicted; counts (summed sample weights for a weighted
    split) or, with `normalize`, fractions of each true class (recall on the diagonal). Zero
    cells stay blank so the few confusions stand out."""
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(cm, dtype=float)
    n = len(cm)
    rows = cm.sum(axis=1, keepdims=True)
    counts = np.allclose(cm, np.rint(cm))
    if normalize:  # not max(rows, 1): summed sample weights may be < 1
        shown, fmt, unit = cm / np.where(rows > 0, rows, 1), ".2f", "fraction of the true class"
    elif counts:
        shown, fmt, unit = np.rint(cm).astype(int), "d", "count"
    else:
        shown, fmt, unit = cm, ".3g", "summed sample weight"
    side = min(WIDTH + 0.1 * max(n - 8, 0), 7.0)
    fig, axes = new_figure(side, side - 0.6)
    ax = axes[0, 0]
    labels = [str(c) for c in classes]
    disp = ConfusionMatrixDisplay(confusion_matrix=shown, display_labels=labels).plot(
        ax=ax,
        cmap="Blues",
        include_values=n <= MANY,
        values_format=fmt,
        colorbar=True,
        xticks_rotation="vertical" if n > 8 or max(map(len, labels), default=0) > 3 else "horizontal",
        text_kw={"fontsize": 9 if n <= 10 else 7},
    )
    for text, value in zip(np.ravel(disp.text_) if disp.text_ is not None else [], cm.ravel()):
        if value == 0:
            text.remove()
    if disp.im_.colorbar is not None:
        disp.im_.colorbar.set_label(unit)
    if n > MANY:
        k = math.ceil(n / MANY)
        ax.set_xticks(range(0, n, k), labels[::k], rotation="vertical")
        ax.set_yticks(range(0, n, k), labels[::k])
    accuracy = np.trace(cm) / cm.sum() if cm.sum() else float("nan")
    ax.set_title(f"{split} confusion matrix, accuracy {accuracy:.3f}")
    return fig


def roc_curves(
    labels: np.ndarray, scores: np.ndarray, classes: Sequence, weights: np.ndarray | None = None
) -> list[RocCurve]:
    """The ROC curve of class 1 (binary) or of each class against the rest, with its AUC.
    `scores`: per-class log-odds (they rank like probabilities but do not saturate at 0 / 1);
    `weights`: sample weights (dataset.weight), as the roc_auc metric weighs the rows. Rows
    whose score is not finite are left out (scikit-learn refuses them), and a class with no
    positive or no negative row has no curve."""
    from sklearn.metrics import roc_auc_score, roc_curve

    out = []
    for c in [1] if len(classes) == 2 else range(len(classes)):
        keep = np.isfinite(scores[:, c])
        pos, score, w = labels[keep] == c, scores[keep, c], None if weights is None else weights[keep]
        if pos.all() or not pos.any():
            continue
        fpr, tpr, _ = roc_curve(pos, score, sample_weight=w)
        out.append((str(classes[c]), fpr, tpr, float(roc_auc_score(pos, score, sample_weight=w))))
    return out


@styled()
def roc(curves: Sequence[RocCurve], *, split: str = "test") -> Figure:
    """ROC curves with their AUC in the legend and the chance diagonal; with more than four
    curves (one per class) the legend moves beside the axes."""
    from sklearn.metrics import RocCurveDisplay

    inside = len(curves) <= 4
    fig, axes = new_figure(WIDTH if inside else WIDTH + 1.1, ROC_HEIGHT)
    ax = axes[0, 0]
    for name, fpr, tpr, auc in curves:
        RocCurveDisplay(fpr=fpr, tpr=tpr, roc_auc=auc, name=name).plot(ax=ax)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance (AUC = 0.50)")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.set_aspect("equal")
    ax.grid(True)
    if inside:
        ax.legend(loc="lower right")
    else:
        small = len(curves) > 12
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
            fontsize="x-small" if small else None,
            ncols=2 if len(curves) > 24 else 1,
        )
    ax.set_title(f"{split} ROC" + (", each class against the rest" if len(curves) > 1 else ""))
    return fig


@styled()
def predictions(
    images: np.ndarray, labels: np.ndarray, preds: np.ndarray, classes: Sequence, *, split: str = "test"
) -> Figure:
    """A grid of images titled 'true / predicted'; wrong predictions in red."""
    n = len(images)
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = new_figure(1.15 * cols, 1.3 * rows + 0.4, rows, cols)
    shown = to_display(images)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(shown[i].squeeze(-1) if shown.shape[-1] == 1 else shown[i], cmap="gray")
        ok = labels[i] == preds[i]
        ax.set_title(f"{classes[labels[i]]} / {classes[preds[i]]}", fontsize="small", color="black" if ok else "red")
    fig.suptitle(f"{split} samples: true / predicted")
    return fig
