"""Classification: softmax cross-entropy on integer labels."""

from __future__ import annotations

from dataclasses import dataclass

import optax

from dlexp import metrics
from dlexp.tasks.base import Task


@dataclass(frozen=True)
class Classification(Task):
    num_classes: int
    metric_names = ("loss", "accuracy", "precision", "recall", "f1")
    name: str = "classification"

    def loss(self, logits, labels):
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype("float32"), labels)

    def sums(self, losses, logits, labels, weights):
        return metrics.classification_sums(losses, logits, labels, weights, self.num_classes)

    def finalize(self, sums):
        return metrics.classification_metrics(sums)
