"""One tag layout for every writer (TensorBoard, metrics.jsonl, MLflow).

Dashboards group tags by their first path part, so the part says what a number is for:

  train/ val/ test/           the headline metrics (loss, accuracy, f1, ...)
  val_per_class/f1/<class>    per-class metrics, one group per split
  optimizer/                  lr, grad_norm, skipped_steps, update_ratio
  throughput/                 samples_per_s, epoch
  val_best/                   each metric at the best evaluation (HParams reads these)
"""

from __future__ import annotations

from typing import Any

BEST = "val_best"  # the group of the best evaluation's values: one point per tag


def split_tags(split: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """A split's metrics as tags: per-class ones (`f1/<class>`) in their own group."""
    return {(f"{split}_per_class/{k}" if "/" in k else f"{split}/{k}"): v for k, v in metrics.items()}


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics that are not per class."""
    return {k: v for k, v in metrics.items() if "/" not in k}


def best_tag(objective_metric: str) -> str:
    """Where the objective's best value is written: `val/loss` -> `val_best/loss`."""
    split, _, name = objective_metric.partition("/")
    return f"{split}_best/{name}"


def best_tags(best_val: dict[str, Any], objective_metric: str, objective_value: Any) -> dict[str, Any]:
    """The best evaluation's headline metrics, with the objective's value (which may be a train metric)."""
    return {**{f"{BEST}/{k}": v for k, v in headline(best_val).items()}, best_tag(objective_metric): objective_value}


def comparison_metrics(tags: dict[str, Any], objective_metric: str) -> list[str]:
    """The metric columns a run is compared by, in order: the objective's best value, its test
    counterpart, the other test metrics, the other best-val metrics. Per-class ones are left out."""
    first = best_tag(objective_metric)
    name = objective_metric.partition("/")[2]
    tests = [t for t in tags if t.startswith("test/")]
    bests = [t for t in tags if t.startswith(f"{BEST}/") and t != first]
    ordered = [first, *sorted(tests, key=lambda t: t != f"test/{name}"), *bests]
    return [t for t in dict.fromkeys(ordered) if t in tags]
