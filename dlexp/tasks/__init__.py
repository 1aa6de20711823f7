"""Tasks own the maths: loss, metrics and the pure step functions.

Which task a run gets (`make_task`):
1. a model that needs its own task says so in a class attribute `task` and passes
   what that task needs from `task_options()`: `dlexp.models.GAN` -> `gan`
   (latent size), `dlexp.models.Autoencoder` -> `autoencoder` (the KL weight beta);
   A causal RNN or Transformer (`model.causal=true`) -> `language_model`;
   `dlexp.models.Seq2Seq` -> `seq2seq` (data with `dataset.target_text`);
2. otherwise the data set's task (`task=auto` lets the data decide, or
   `task=classification|regression` forces it): classification, or regression,
   which is `forecasting` when the target has several outputs (a horizon). Text
   without a label (`dataset.label=null`) is `language_model` data, which needs a
   causal model.
"""

from __future__ import annotations

from typing import Any

from dlexp.errors import ConfigError
from dlexp.tasks.autoencoder import Reconstruction
from dlexp.tasks.base import StepOptions, Task, make_eval_step, make_predict, make_train_step
from dlexp.tasks.classification import Classification
from dlexp.tasks.generative import GANTask
from dlexp.tasks.language_model import LanguageModel
from dlexp.tasks.regression import Regression
from dlexp.tasks.seq2seq import Seq2SeqTask
from dlexp.tasks.sequence import Forecasting

MODEL_TASKS = {
    "gan": GANTask,
    "autoencoder": Reconstruction,
    "language_model": LanguageModel,
    "seq2seq": Seq2SeqTask,
}  # chosen by a model's `task` attribute
PRECISIONS = ("float32", "bfloat16")


def make_task(
    name: str,
    *,
    num_outputs: int,
    target_scale=(0.0, 1.0),
    classes=None,
    model: Any = None,
    loss: Any = None,
    precision: str = "float32",
) -> Task:
    """The task for data of kind `name` ("classification" | "regression") and this model.

    loss: the `loss` config (l1, l2, label_smoothing); precision: trainer.precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is not valid; choose one of {', '.join(PRECISIONS)}")
    l1, l2, smoothing = (float(getattr(loss, k, 0.0) or 0.0) for k in ("l1", "l2", "label_smoothing"))
    for key, v in (("l1", l1), ("l2", l2)):
        if v < 0:
            raise ConfigError(f"loss.{key}={v} must be at least 0")
    opts = StepOptions(l1=l1, l2=l2, compute_dtype=precision)
    declared = getattr(model, "task", None)
    if name == "language_model" and declared != "language_model":
        raise ConfigError(
            "text without a label (dataset.label=null) trains a language model: set model.causal=true "
            "(model=transformer, lstm or gru), or name the label column in dataset.label"
        )
    if (name == "seq2seq") != (declared == "seq2seq"):
        raise ConfigError(
            "a source and a target text column (dataset.target_text) train model=seq2seq, and model=seq2seq "
            f"needs them; this run has data for {name} and model._target_={type(model).__name__}"
        )
    if declared is not None:
        if declared not in MODEL_TASKS:
            raise ConfigError(f"the model declares task={declared!r}; known model tasks: {', '.join(MODEL_TASKS)}")
        name = declared
    if smoothing and name != "classification":
        raise ConfigError(f"loss.label_smoothing={smoothing} applies to classification only; this run is {name}")
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"loss.label_smoothing={smoothing} must be in [0, 1)")
    if declared is not None:
        options = model.task_options() if hasattr(model, "task_options") else {}
        return MODEL_TASKS[declared](opts=opts, **options)
    if name == "classification":
        names = tuple(classes) if classes is not None else tuple(range(num_outputs))
        return Classification(num_classes=num_outputs, label_smoothing=smoothing, classes=names, opts=opts)
    if num_outputs > 1:
        return Forecasting(horizon=num_outputs, target_scale=tuple(target_scale), opts=opts)
    return Regression(target_scale=tuple(target_scale), opts=opts)


__all__ = [
    "Task",
    "StepOptions",
    "make_task",
    "make_train_step",
    "make_eval_step",
    "make_predict",
    "Classification",
    "Regression",
    "Forecasting",
    "GANTask",
    "Reconstruction",
    "LanguageModel",
    "Seq2SeqTask",
]
