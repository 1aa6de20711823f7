"""Metrics as sums that accumulate on device, finalized to numbers on the host.

A jitted step returns sums (loss sum, example count, confusion matrix, ...) that
add across batches and devices; only at the logging cadence are they fetched and
turned into accuracy, F1, R2. Everything classification reports derives from the
confusion matrix, so the numbers agree with each other by construction.

ROC-AUC cannot be a sum of per-batch AUCs, so the sums hold, per class, a histogram
of that class's score over its positive examples and over all examples. The score is
the class's log-odds (log p / (1 - p), the same ranking as its probability), binned
over [-ROC_RANGE, ROC_RANGE]: unlike probabilities it does not saturate at 0 or 1 for
a confident model, where a probability histogram would pile everything into its end
bins. The AUC read off them counts a positive and a negative in the same bin as a tie
(half), the way scikit-learn counts equal scores; it equals scikit-learn's
`roc_auc_score` up to that binning (within 1e-3 in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

ROC_BINS = 4096
ROC_RANGE = 32.0  # log-odds beyond +-32 share the end bins (float32 probabilities saturate near +-17)


def class_log_odds(logits):
    """[batch, classes] log(p_c / (1 - p_c)) = logit_c - logsumexp(other logits), computed stably."""
    c = logits.shape[-1]
    others = jnp.where(jnp.eye(c, dtype=bool), -jnp.inf, logits[:, None, :])  # [batch, class, other]
    return logits - jax.nn.logsumexp(others, axis=-1)


def classification_sums(
    losses, logits, labels, weights, num_classes: int, bins: int = ROC_BINS, roc: bool = True
) -> dict:
    """Loss, count and confusion matrix; with `roc`, the score histograms ROC-AUC is read
    from (a scatter-add that costs ~13% of a small model's train step on XLA CPU, so
    training windows leave it out: `Classification.train_sums`)."""
    pred = jnp.argmax(logits, axis=-1)
    true_1h = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * weights[:, None]
    pred_1h = jax.nn.one_hot(pred, num_classes, dtype=jnp.float32)
    out = {
        "loss": jnp.sum(losses * weights),
        "count": jnp.sum(weights),
        "confusion": true_1h.T @ pred_1h,  # [true, predicted]
    }
    if not roc:
        return out
    score = (class_log_odds(logits.astype(jnp.float32)) + ROC_RANGE) / (2 * ROC_RANGE)
    b = jnp.clip(jnp.floor(score * bins).astype(jnp.int32), 0, bins - 1)  # [batch, classes]
    cls = jnp.broadcast_to(jnp.arange(num_classes), b.shape)
    hist = jnp.zeros((num_classes, bins), jnp.float32)
    out["roc_pos"] = hist.at[cls, b].add(true_1h)  # [class, bin]: positives of the class
    out["roc_all"] = hist.at[cls, b].add(jnp.broadcast_to(weights[:, None], b.shape))  # [class, bin]: all
    return out


def divisor(total) -> float:
    """A summed count or weight to divide the sums by: itself, or 1 when it is 0 (the sums
    are 0 too). Not max(total, 1): sample weights (dataset.weight) may sum to less than 1."""
    t = float(total)
    return t if t > 0 else 1.0


def binned_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from score histograms (bins in increasing score): P(score_pos > score_neg) + P(tie) / 2."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg  # negatives in lower bins
    return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


def roc_auc(sums: dict) -> float:
    """Binary: the AUC of class 1's probability. Multi-class: the macro one-vs-rest AUC over
    the classes with both positives and negatives (scikit-learn's multi_class="ovr")."""
    pos = np.asarray(sums["roc_pos"], np.float64)
    neg = np.asarray(sums["roc_all"], np.float64) - pos
    if pos.shape[0] == 2:
        return binned_auc(pos[1], neg[1])
    aucs = [binned_auc(p, n) for p, n in zip(pos, neg)]
    aucs = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def roc_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) from score histograms, thresholds high to low."""
    tpr = np.concatenate([[0.0], np.cumsum(pos[::-1]) / max(pos.sum(), 1e-12)])
    fpr = np.concatenate([[0.0], np.cumsum(neg[::-1]) / max(neg.sum(), 1e-12)])
    return fpr, tpr


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a [true, predicted] confusion matrix."""
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_metrics(sums: dict, classes: Sequence | None = None) -> dict[str, float]:
    """Loss, accuracy, macro precision / recall / F1 (over the classes that occur, as
    scikit-learn with labels=present classes), ROC-AUC, and per class `precision/<class>`,
    `recall/<class>`, `f1/<class>` when `classes` (names in id order) are given."""
    cm = np.asarray(sums["confusion"], np.float64)
    n = divisor(sums["count"])
    pc = per_class(cm)
    present = pc["support"] > 0
    macro = lambda v: float(v[present].mean()) if present.any() else 0.0  # noqa: E731
    out = {
        "loss": float(sums["loss"]) / n,
        "accuracy": float(np.diag(cm).sum()) / n,
        "precision": macro(pc["precision"]),
        "recall": macro(pc["recall"]),
        "f1": macro(pc["f1"]),
    }
    if "roc_pos" in sums:
        out["roc_auc"] = roc_auc(sums)
    for name in ("precision", "recall", "f1") if classes is not None else ():
        out.update({f"{name}/{c}": float(v) for c, v in zip(classes or (), pc[name])})
    return out


def regression_sums(losses, pred, target, weights, scale: tuple[float, float]) -> dict:
    """Sums in the target's original units (`scale` = the train mean and std used to standardize
    it). A multi-output target (a forecast horizon) counts every value: `values` = examples * outputs."""
    mean, std = scale
    p = pred.reshape(target.shape) * std + mean
    t = target * std + mean
    err = p - t
    w = weights.reshape(weights.shape + (1,) * (t.ndim - 1))
    return {
        "loss": jnp.sum(losses * weights),
        "count": jnp.sum(weights),
        "values": jnp.sum(w * jnp.ones_like(t)),
        "se": jnp.sum(err**2 * w),
        "ae": jnp.sum(jnp.abs(err) * w),
        "y": jnp.sum(t * w),
        "y2": jnp.sum(t**2 * w),
    }


def regression_metrics(sums: dict) -> dict[str, float]:
    """MSE, RMSE, MAE in the target's units; R2 = 1 - SSE / SST, pooled over the outputs."""
    n = divisor(sums["count"])
    nv = divisor(sums.get("values", sums["count"]))
    mse = float(sums["se"]) / nv
    var = float(sums["y2"]) / nv - (float(sums["y"]) / nv) ** 2
    return {
        "loss": float(sums["loss"]) / n,
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(sums["ae"]) / nv,
        "r2": 1.0 - mse / var if var > 0 else float("nan"),
    }


def add_sums(a: dict, b: dict) -> dict:
    return jax.tree.map(jnp.add, a, b)
