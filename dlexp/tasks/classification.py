"""Classification: softmax cross-entropy on integer labels, optionally label-smoothed."""

from __future__ import annotations

from dataclasses import dataclass

import jax
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
        logits = logits.astype("float32")
        if not self.label_smoothing:
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        target = optax.smooth_labels(jax.nn.one_hot(labels, self.num_classes), self.label_smoothing)
        return optax.softmax_cross_entropy(logits, target)

    def sums(self, losses, logits, labels, weights):
        return metrics.classification_sums(losses, logits, labels, weights, self.num_classes)

    def train_sums(self, losses, logits, labels, weights):  # no ROC-AUC while training: see classification_sums
        return metrics.classification_sums(losses, logits, labels, weights, self.num_classes, roc=False)

    def finalize(self, sums):
        return metrics.classification_metrics(sums, self.classes)
