"""Feature preparation fitted on the train split only, and saved so that evaluation
and inference apply exactly the same transform (`Prep.to_dict` -> prep.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from dlexp.errors import DataError

SCALES = ("standard", "minmax", "none")


@dataclass
class Prep:
    features: list[str]
    label: str
    task: str
    scale: str = "standard"
    classes: list | None = None  # classification: label values in id order
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # per feature column
    target: dict[str, float] = field(default_factory=dict)  # regression: mean and std of y
    image_shape: list[int] | None = None

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, train: pl.DataFrame, *, features, label, task, scale, image_shape=None) -> "Prep":
        if scale not in SCALES:
            raise DataError(f"dataset.scale={scale!r} is not valid; choose one of {', '.join(SCALES)}")
        prep = cls(list(features), label, task, scale, image_shape=list(image_shape) if image_shape else None)
        if scale == "standard":
            mean = train.select(pl.col(features).mean()).row(0)
            std = train.select(pl.col(features).std(ddof=0)).row(0)
            prep.stats = {c: {"mean": float(m or 0.0), "std": safe_scale(s)} for c, m, s in zip(features, mean, std)}
        elif scale == "minmax":
            lo = train.select(pl.col(features).min()).row(0)
            hi = train.select(pl.col(features).max()).row(0)
            prep.stats = {c: {"min": float(a or 0.0), "range": safe_scale((b or 0.0) - (a or 0.0))} for c, a, b in zip(features, lo, hi)}
        y = train.get_column(label)
        if task == "classification":
            prep.classes = sorted(y.unique().to_list())
        else:
            prep.target = {"mean": float(y.mean()), "std": safe_scale(y.std(ddof=0))}
        return prep

    # ------------------------------------------------------------ transform
    def features_expr(self) -> list[pl.Expr]:
        """One float32 expression per feature column: the fitted scaling."""
        exprs = []
        for c in self.features:
            e = pl.col(c).cast(pl.Float32)
            s = self.stats.get(c)
            if self.scale == "standard":
                e = (e - s["mean"]) / s["std"]
            elif self.scale == "minmax":
                e = (e - s["min"]) / s["range"]
            exprs.append(e.cast(pl.Float32).alias(c))
        return exprs

    def transform(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(x float32 [n, *input_shape], y) for a frame holding the feature and label columns."""
        x = df.select(self.features_expr()).to_numpy(order="c")
        if self.image_shape:
            x = x.reshape((x.shape[0], *self.image_shape))
        return x, self.transform_label(df.get_column(self.label))

    def transform_label(self, y: pl.Series) -> np.ndarray:
        if self.task == "classification":
            index = {v: i for i, v in enumerate(self.classes)}
            unseen = set(y.unique().to_list()) - set(index)
            if unseen:
                raise DataError(
                    f"label column {self.label!r} holds classes not seen in training: {sorted(map(str, unseen))[:10]}"
                )
            return y.replace_strict(index, return_dtype=pl.Int32).to_numpy()
        t = self.target
        return ((y.cast(pl.Float64) - t["mean"]) / t["std"]).cast(pl.Float32).to_numpy()

    # ---------------------------------------------------------------- save
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Prep":
        return cls(**d)


def safe_scale(v) -> float:
    """A scale that is 0 or missing (a constant column) divides by 1 instead."""
    v = float(v) if v is not None else 0.0
    return v if v > 1e-12 and np.isfinite(v) else 1.0
