"""The `Dataset` every source returns, and the config-driven entry point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlexp.config import call_target, parameters, target_kwargs
from dlexp.data.shards import LocalShards, ShardSpec
from dlexp.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Prepared arrays per split; features float32 [n, *input_shape] (text: int32 token ids [n, L])."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]  # int32 class ids, or float32 targets (standardized)
    task: str  # "classification" | "regression" | "language_model" (text without a label) | "seq2seq"
    classes: list | None = None  # class names, in id order
    target_scale: tuple[float, float] = (0.0, 1.0)  # regression: y = (raw - mean) / std
    prep: dict[str, Any] = field(default_factory=dict)  # the fitted preparation (prep.json)
    weights: dict[str, np.ndarray] | None = None  # per-row weights from dataset.weight, per split
    # Cross-validation: each split's row ids in the cleaned table, class ids of every row,
    # and `resplit(rows) -> Dataset`, which prepares new splits (fitted on their train rows).
    rows: dict[str, np.ndarray] | None = None
    row_labels: np.ndarray | None = None
    resplit: Callable[[dict[str, np.ndarray]], Dataset] | None = field(default=None, repr=False)
    stream: Any = None  # a TrainStream when the train split stays on disk (x["train"] is None, y stays)
    # trainer.data_shards > 1: this process's shards (dlexp/data/shards.py); x / y / weights
    # then hold the owned shards' rows, and sizes() counts every shard's
    shards: LocalShards | None = None
    tokenizer: Any = None  # a text column's trained tokenizers.Tokenizer (saved beside prep.json)

    def __post_init__(self) -> None:
        if self.weights is not None:
            self._check_weights()

    def _check_weights(self) -> None:
        """A weight scales its row's loss and metrics (0: the row is ignored), so every row
        needs one, finite and >= 0; and the train weights must not all be 0 (the weighted
        loss divides by their sum)."""
        assert self.weights is not None  # called only for a data set with a weight column
        column = self.prep.get("weight")
        name = f"weight column {column!r} (dataset.weight)" if column else "dataset.weight"
        for split, y in self.y.items():
            w = self.weights.get(split)
            if w is None or len(w) != len(y):
                raise DataError(
                    f"{name}: the {split} split has {len(y)} rows but {'no' if w is None else len(w)} weights"
                )
            check_weight_values(w, name, f"the {split} split")
        w = self.weights["train"]
        if len(w) and not float(np.sum(w, dtype=np.float64)) > 0:
            raise DataError(f"{name} is 0 for every train row: nothing would be learned; give some rows a weight > 0")

    def sample_weights(self, split: str) -> np.ndarray | None:
        """The split's per-row weights (dataset.weight), or None when the data set has none."""
        return None if self.weights is None else self.weights[split]

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.stream is not None:
            return tuple(self.stream.x_shape)
        if self.shards is not None and self.shards.streams:
            return tuple(self.shards.streams[0].x_shape)
        return tuple(self.x["train"].shape[1:])

    @property
    def vocab_size(self) -> int | None:
        """Token ids of a text column are in [0, vocab_size); None without text."""
        return self.prep.get("vocab_size")

    @property
    def num_outputs(self) -> int:
        if self.task == "classification":
            return len(self.classes or ())
        if self.task in ("language_model", "seq2seq"):  # a distribution over the next token
            return int(self.prep["vocab_size"])
        return int(np.prod(self.y["train"].shape[1:]))  # 1, or a forecast horizon

    @property
    def augment(self) -> dict | None:
        """The training-time image augmentation spec (dataset.augment), if any."""
        return self.prep.get("source", {}).get("augment")

    def sizes(self) -> dict[str, int]:
        if self.shards is not None:
            return {s: sum(self.shards.sizes[s]) for s in SPLITS}
        return {s: int(self.y[s].shape[0]) for s in SPLITS}

    def check_nonempty(self) -> None:
        for split, n in self.sizes().items():
            if n == 0:
                raise DataError(
                    f"the {split} split is empty ({self.sizes()}); "
                    "raise dataset.val_fraction / dataset.test_fraction or use more rows"
                )


def check_weight_values(w: np.ndarray, name: str, where: str) -> None:
    """Sample weights must be finite and >= 0: a negative weight would reward a wrong answer."""
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError(
            f"{name} holds {int(bad.sum())} negative or non-finite values in {where} "
            f"(e.g. {w[bad][0]}); sample weights must be finite and >= 0"
        )


# Arguments dlexp supplies to a dataset `_target_` when its signature takes them.


def load_dataset(
    node: Any, *, seed: int, cache_dir: str, task: str = "auto", shards: ShardSpec | None = None
) -> Dataset:
    """Builds the data set from its config node (`_target_` plus keyword arguments).
    `shards`: read only this process's shards (trainer.data_shards > 1), which the target must take."""
    given: dict[str, Any] = {"seed": seed, "cache_dir": cache_dir, "task": task}
    if shards is not None and shards.sharded:
        fn, _ = target_kwargs(node, "dataset")
        if "shards" not in parameters(fn):
            raise DataError(
                f"trainer.data_shards={shards.count}: dataset._target_ {node['_target_']!r} reads every row in "
                "every process; data sets read by dlexp.data.table (csv, parquet and the built-in ones) take shards. "
                "Set trainer.data_shards=1"
            )
        given["shards"] = shards
    data = call_target(node, "dataset", given)
    if not isinstance(data, Dataset):
        raise DataError(f"dataset._target_ returned {type(data).__name__}, expected dlexp.data.Dataset")
    data.check_nonempty()
    return data
