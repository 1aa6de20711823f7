"""The calls every writer takes. A writer overrides those it records and ignores the rest,
so the trainer logs once and never knows where the numbers go."""

from __future__ import annotations

from typing import Any


class Writer:
    def scalars(self, step: int, values: dict[str, float]) -> None: ...

    def text(self, tag: str, text: str, step: int = 0) -> None: ...

    def image(self, tag: str, image_hwc: Any, step: int) -> None: ...

    def histogram(self, tag: str, values: Any, step: int) -> None: ...

    def embedding(
        self, tag: str, features: Any, metadata: list, header: list[str], images_nchw: Any, step: int
    ) -> None: ...

    def loss_chart(self, objective_metric: str) -> None:
        """One chart of train and val loss with the objective, where the dashboard has such a layout."""

    def params(self, config: dict[str, Any]) -> None:
        """The resolved config, flattened to dotted keys (at the start of a run)."""

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float], comparison: Comparison) -> None:
        """The values a run is compared by and its results (at the end of a run)."""

    def artifacts(self, paths: list[str]) -> None:
        """Files that describe the run (summary.json, plots) once it has ended."""

    def flush(self) -> None: ...

    def close(self, status: str = "completed") -> None: ...


class Comparison:
    """How the runs of a sweep are compared: which hyperparameters vary (the others are
    constant) and which metric columns come first (the objective's)."""

    def __init__(self, swept: tuple[str, ...], metrics: list[str], group: str | None = None):
        self.swept = swept  # empty for a run on its own: every hyperparameter is shown
        self.metrics = metrics
        self.group = group  # copies of one job (seeds) share a group: HParams aggregates them


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
