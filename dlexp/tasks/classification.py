"""Classification: softmax cross-entropy on integer labels, optionally label-smoothed."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from dlexp import metrics
from dlexp.tasks.base import Task


@dataclass(frozen=True, kw_only=True)
class Classification(Task):
    num_classes: int
    label_smoothing: float = 0.0  # the target puts 1 - a on the label and a / num_classes on every class
    classes: tuple | None = None  # class names in id order: per-class metrics are reported under them
    name = "classification"
    metric_names = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc")

    def loss(self, logits, labels):
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype("float32"), labels)

    def hyperparameters(self) -> dict[str, float]:
        smoothing = {"label_smoothing": float(self.label_smoothing)} if self.label_smoothing else {}
        return {**super().hyperparameters(), **smoothing}

    def train_losses(self, losses, logits, labels, hyper):
        """Label smoothing trains on (1 - a) * CE(label) + a * mean over classes of -log p; the
        reported loss (train, val, test) stays the plain cross-entropy, comparable across a."""
        if "label_smoothing" not in hyper:
            return losses
        a = hyper["label_smoothing"]
        uniform = -jnp.mean(jax.nn.log_softmax(logits.astype("float32")), axis=-1)
        return (1.0 - a) * losses + a * uniform

    def sums(self, losses, logits, labels, weights):
        return metrics.classification_sums(losses, logits, labels, weights, self.num_classes)

    def train_sums(self, losses, logits, labels, weights):  # no ROC-AUC while training: see classification_sums
        return metrics.classification_sums(losses, logits, labels, weights, self.num_classes, roc=False)

    def finalize(self, sums):
        return metrics.classification_metrics(sums, self.classes)
