"""Tasks own the maths: loss, metrics and the pure step functions."""

from dlexp.tasks.base import Task, make_eval_step, make_train_step
from dlexp.tasks.classification import Classification
from dlexp.tasks.regression import Regression

TASKS = {"classification": Classification, "regression": Regression}


def make_task(name: str, *, num_outputs: int, target_scale=(0.0, 1.0)) -> Task:
    if name == "classification":
        return Classification(num_classes=num_outputs)
    return Regression(target_scale=tuple(target_scale))


__all__ = ["Task", "make_task", "make_train_step", "make_eval_step", "Classification", "Regression"]
