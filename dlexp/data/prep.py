"""Feature preparation fitted on the train split only, and saved so that evaluation
and inference apply exactly the same transform (`Prep.to_dict` -> prep.json;
`Prep.from_dict(d).transform(frame)` on a new file gives the model's inputs).

Order: fill missing values, clip outliers, encode categories, scale. Tabular columns
become Polars expressions (so a streamed split is prepared by Polars as it is read);
an image column and sequence columns are shaped in numpy. A text column becomes int32
token ids (dlexp/data/text.py): its tokenizer is fitted on train like the rest, and saved
beside prep.json rather than in it (`attach_tokenizer` puts it back).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from dlexp.data import clean, text
from dlexp.data.gather import Moments, NotFinite, gather_moments, gather_rows, scale_rows
from dlexp.errors import DataError

SCALES = ("standard", "minmax", "none", "unit", "channel")  # unit / channel: images
ENCODINGS = ("onehot", "ordinal")
# Inputs whose values float32 holds exactly are clipped and scaled in float32 (half the
# memory traffic of Float64, no casts); others (Float64, wide integers) in Float64.
FLOAT32_EXACT = (pl.Float32, pl.Int8, pl.Int16, pl.UInt8, pl.UInt16, pl.Boolean)
FLOAT32_SAFE = 1e30  # fitted values beyond this could overflow float32 arithmetic: Float64 then


DType = pl.DataType | type[pl.DataType]  # an instance (pl.Float32()) or the class (pl.Float32)


@dataclass
class Prep:
    features: list[str]  # numeric feature columns
    label: str  # "": a language model's text, which has no label
    task: str
    scale: str = "standard"
    classes: list | None = None  # classification: label values in id order
    stats: dict[str, Any] = field(default_factory=dict)  # per column {mean, std} or {min, range}
    target: dict[str, float] = field(default_factory=dict)  # regression: mean and std of y
    image_shape: list[int] | None = None
    categorical: list[str] = field(default_factory=list)
    encode: str = "onehot"
    categories: dict[str, list] = field(default_factory=dict)  # train categories per column
    image: str | None = None
    sequence: list[str] = field(default_factory=list)
    sequence_length: int | None = None
    weight: str | None = None
    fills: dict[str, Any] = field(default_factory=dict)  # missing values: column -> fill value
    outliers: str | None = None
    outlier_action: str = "clip"
    bounds: dict[str, list[float]] = field(default_factory=dict)  # column -> [low, high]
    text: list[str] = field(default_factory=list)  # one String column, tokenized
    tokenizer: dict[str, Any] | None = None  # the TokenizerConfig it was trained with
    vocab_size: int | None = None  # of the trained tokenizer (at most tokenizer.vocab_size)
    tokenizer_digest: str | None = None  # names the trained tokenizer (tokenizer.json beside prep.json)
    target_text: str | None = None  # seq2seq: the target's String column, tokenized like the source

    def __post_init__(self) -> None:
        self.trained_tokenizer: Any = None  # a tokenizers.Tokenizer: not a field, not in prep.json

    # ------------------------------------------------------------------ text
    def fit_tokenizer(self, train_texts: pl.Series, cache_dir: str | None = None) -> None:
        """Trains the text column's tokenizer on the train rows (or takes the one cached for them)."""
        cfg = text.TokenizerConfig.from_node(self.tokenizer)
        self.tokenizer = cfg.to_dict()
        self.attach_tokenizer(text.fit_cached(train_texts, cfg, cache_dir))

    def attach_tokenizer(self, tok: Any) -> None:
        self.trained_tokenizer = tok
        self.vocab_size, self.tokenizer_digest = int(tok.get_vocab_size()), text.digest(tok)

    def text_ids(self, df: pl.DataFrame, cache_dir: str | None = None) -> np.ndarray:
        """int32 [n, max_length] token ids of the text column (pad id 0)."""
        if self.trained_tokenizer is None:
            raise AssertionError("fit_tokenizer or attach_tokenizer first")
        return text.encode_cached(self.trained_tokenizer, df.get_column(self.text[0]), cache_dir)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: pl.LazyFrame,
        *,
        rules: dict[str, Any],
        threshold: float | None = None,
        defer_moments: bool = False,
    ) -> Prep:
        """Fits fills, outlier bounds, categories, scaling and the target on `train` only.

        defer_moments: leave the standard scaling of float32 inputs (`moment_columns`) to
        `transform_rows`, which sums their moments while it cuts the arrays (a moment
        column without stats is what it fits)."""
        if self.scale not in SCALES:
            raise DataError(f"dataset.scale={self.scale!r} is not valid; choose one of {', '.join(SCALES)}")
        if self.encode not in ENCODINGS:
            raise DataError(f"dataset.encode={self.encode!r} is not valid; choose one of {', '.join(ENCODINGS)}")
        schema = train.collect_schema()
        self.stats = {}
        self.fills = clean.fit_fills(train, {c: r for c, r in rules.items() if r != "drop"})
        train = train.with_columns([clean.fill_expr(c, self.fills) for c in self.fills])
        if self.outliers:
            clean.check_action(self.outlier_action)
            self.bounds = clean.fit_bounds(train, self.features, self.outliers, threshold)
            if self.outlier_action == "drop":
                train = train.filter(~clean.outlier_mask(self.bounds))
        moments = self.moment_columns(schema)
        if moments and not defer_moments:
            self.stats.update(self.fit_moments(train, moments))  # filled, not yet clipped: see _input_expr
        if self.bounds:
            train = train.with_columns([self._clipped(c) for c in self.bounds])
        for c in self.categorical:
            self.categories[c] = ordered_categories(category_values(train, c))
        self.stats = self._fit_scale(train, fitted=moments)
        if self.task == "regression":
            y = train.select(pl.col(self.label).cast(pl.Float64).alias("y")).collect().to_series()
            y_np = y.to_numpy()
            self.target = {"mean": float(y_np.mean()), "std": safe_scale(float(y_np.std()))}
        return self

    def _fit_scale(self, train: pl.LazyFrame, fitted: list[str]) -> dict[str, Any]:
        """Per-input scaling stats; `fitted` (the moment columns) are in self.stats already
        or left to the resident cut."""
        if self.image:
            return self._fit_image_scale(train)
        cols = self.features if not self.sequence else self.sequence
        if not cols:
            return {}
        if self.sequence:
            train = train.select([pl.col(c).list.eval(pl.element().cast(pl.Float64)).explode() for c in cols])
        x = [pl.col(c).cast(pl.Float64) for c in cols]
        pixels = self.image_shape is not None and self.scale in ("unit", "channel")
        if self.scale == "standard" or (pixels and self.scale == "channel"):
            if pixels and self.image_shape is not None:
                return _channel_stats(train, cols, self.image_shape[-1])
            rest = [c for c in cols if c not in fitted]
            x = [pl.col(c).cast(pl.Float64) for c in rest]
            a, b = _column_aggregates(train, [e.mean() for e in x], [e.std(ddof=0) for e in x])
            return {**self.stats, **{c: {"mean": float(m or 0.0), "std": safe_scale(s)} for c, m, s in zip(rest, a, b)}}
        if self.scale in ("minmax", "unit"):
            lo, hi = _column_aggregates(train, [e.min() for e in x], [e.max() for e in x])
            if self.scale == "unit":  # one min and range for every pixel
                lo_all = min((v for v in lo if v is not None), default=0.0)
                hi_all = max((v for v in hi if v is not None), default=1.0)
                lo, hi = [lo_all] * len(cols), [hi_all] * len(cols)
            return {
                c: {"min": float(a or 0.0), "range": safe_scale((b or 0.0) - (a or 0.0))}
                for c, a, b in zip(cols, lo, hi)
            }
        return {}

    def _fit_image_scale(self, train: pl.LazyFrame) -> dict[str, Any]:
        if self.scale == "none" or not self.image:
            return {}
        x = self._image_array(train.select(self.image).collect())
        if self.scale in ("unit", "minmax"):
            lo, hi = float(x.min()), float(x.max())
            return {self.image: {"min": lo, "range": safe_scale(hi - lo)}}
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)  # per channel
        return {self.image: {"mean": flat.mean(0).tolist(), "std": [safe_scale(s) for s in flat.std(0)]}}

    def moment_columns(self, schema: pl.Schema) -> list[str]:
        """Inputs standardized from their float32 moments (`standard_stats`): float32-exact
        columns under scale=standard. Both the resident cut (numpy) and `fit_moments`
        (Polars) sum the same float32 values around the same first train row; only the
        order of the float64 additions differs, far below what the float32 scaling keeps."""
        if self.scale != "standard" or self.image or self.sequence:
            return []
        return [c for c in self.features if self._float32_exact(c, schema[c], with_stats=False)]

    def fit_moments(self, train: pl.LazyFrame, cols: list[str]) -> dict[str, dict]:
        """{column: {mean, std}} of `cols` over `train` (filled, not clipped), from the same
        float32 values and sums as the resident cut (`dlexp.data.gather.gather_moments`)."""
        exprs = [self._input_expr(c, pl.Float32).alias(c) for c in cols]
        first = train.select(exprs).head(1).collect(engine="streaming")
        shift = np.array([first[c][0] if first.height else 0.0 for c in cols], np.float32)
        aggs = [pl.len().alias("n")]
        for c, e, v in zip(cols, exprs, shift):
            d = e - pl.lit(float(v), dtype=pl.Float32)
            aggs += [
                d.cast(pl.Float64).sum().alias(f"{c}:1"),
                (d * d).cast(pl.Float64).sum().alias(f"{c}:2"),
                e.null_count().alias(f"{c}:nulls"),
            ]
        row = train.select(aggs).collect(engine="streaming").row(0, named=True)
        nan = float("nan")  # a null makes the sums unusable, as NaN makes numpy's: float64 moments then
        s1 = [row[f"{c}:1"] if not row[f"{c}:nulls"] else nan for c in cols]
        s2 = [row[f"{c}:2"] if not row[f"{c}:nulls"] else nan for c in cols]
        m = Moments(int(row["n"]), shift, np.array(s1, np.float64), np.array(s2, np.float64))
        stats = self._moment_stats(train, cols, m)
        assert stats is not None  # None only without train rows to fall back on
        return stats

    def _moment_stats(self, train: pl.LazyFrame | None, cols: list[str], m: Moments) -> dict[str, dict] | None:
        """standard_stats per column; a column whose float32 moments are not finite (values
        near the float32 limit, nulls) gets Polars' float64 mean and std instead. Without
        `train` (the resident cut, which can only sum): None if any column needs that."""
        out, redo = {}, []
        for i, c in enumerate(cols):
            s = standard_stats(m.count, float(m.shift[i]), float(m.sum[i]), float(m.sum_sq[i]))
            if s is None:
                redo.append(c)
            else:
                out[c] = s
        if redo and train is None:
            return None
        if redo and train is not None:
            x = [self._input_expr(c, pl.Float32).cast(pl.Float64) for c in redo]
            a, b = _column_aggregates(train, [e.mean() for e in x], [e.std(ddof=0) for e in x])
            out.update({c: {"mean": float(v or 0.0), "std": safe_scale(s)} for c, v, s in zip(redo, a, b)})
        return out

    # ------------------------------------------------------------ transform
    def _clipped(self, c: str) -> pl.Expr:
        lo, hi = self.bounds[c]
        return pl.col(c).cast(pl.Float64).clip(lo, hi).alias(c)

    def features_expr(self, schema: pl.Schema | None = None) -> list[pl.Expr]:
        """One float32 expression per tabular input: fill, clip, scale; categories encoded.

        Given the input `schema`, columns in FLOAT32_EXACT are computed in float32 (see
        `_scaled`: within about an ulp of the Float64 result); without it, all in Float64.
        """
        return [e for e, _ in self._inputs(schema, defer_scale=False)]

    def _inputs(self, schema: pl.Schema | None, defer_scale: bool) -> list[tuple[pl.Expr, tuple]]:
        """(expression, (shift_hi, shift_lo, size)) per tabular input. With defer_scale, a
        float32 column's expression stops before scaling and its affine is what is left
        to apply (`dlexp.data.gather`); otherwise every affine is the identity (0, 0, 1)."""
        identity = (0.0, 0.0, 1.0)
        out = []
        for c in self.features:
            dtype = pl.Float32 if schema is not None and self._float32_exact(c, schema[c]) else pl.Float64
            e = self._input_expr(c, dtype)
            s = self.stats.get(c)
            if defer_scale and dtype == pl.Float32 and s:
                out.append((e.alias(c), _float32_affine(s)))
            else:
                out.append((_scaled(e, s, dtype).cast(pl.Float32).alias(c), identity))
        for c in self.categorical:
            e, cats = clean.fill_expr(c, self.fills), self.categories[c]
            if self.encode == "onehot":  # an unseen category is all zeros
                out += [((e == v).fill_null(False).cast(pl.Float32).alias(f"{c}={v}"), identity) for v in cats]
            else:  # an unseen category (or a null) is -1
                codes = {v: float(i) for i, v in enumerate(cats)}
                out.append((e.replace_strict(codes, default=-1.0, return_dtype=pl.Float32).alias(c), identity))
        return out

    def _input_expr(self, c: str, dtype: DType) -> pl.Expr:
        """Column c filled, cast to `dtype` and clipped: an input before its scaling."""
        e = clean.fill_expr(c, self.fills).cast(dtype)
        if c in self.bounds:
            lo, hi = self.bounds[c]
            e = e.clip(pl.lit(lo, dtype=dtype), pl.lit(hi, dtype=dtype))
        return e

    def _float32_exact(self, c: str, dtype: pl.DataType, with_stats: bool = True) -> bool:
        fitted = [*self.bounds.get(c, []), *((self.stats.get(c) or {}).values() if with_stats else [])]
        fill = self.fills.get(c, 0.0)
        fitted += [fill] if isinstance(fill, (int, float)) else []
        return dtype in FLOAT32_EXACT and all(np.isfinite(v) and abs(v) < FLOAT32_SAFE for v in fitted)

    def input_names(self) -> list[str]:
        names = list(self.features)
        for c in self.categorical:
            names += [f"{c}={v}" for v in self.categories[c]] if self.encode == "onehot" else [c]
        return names

    def transform_x(self, df: pl.DataFrame) -> np.ndarray:
        """float32 [n, *input_shape] for a frame holding the input columns (text: int32 token ids)."""
        if self.text:
            return self.text_ids(df)
        if self.image:
            x = self._image_array(df.select(self.image))
            s = self.stats.get(self.image)
            if s and "min" in s:
                x = (x - np.float32(s["min"])) / np.float32(s["range"])
            elif s:
                x = (x - np.asarray(s["mean"], np.float32)) / np.asarray(s["std"], np.float32)
            return np.ascontiguousarray(x, np.float32)
        if self.sequence:
            return np.stack([self._sequence_array(df, c) for c in self.sequence], axis=-1)
        x = df.select(self.features_expr(df.schema)).to_numpy()
        return x.reshape((x.shape[0], *self.image_shape)) if self.image_shape else x

    def transform_rows(self, df: pl.DataFrame | pl.LazyFrame, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{split: float32 [len(idx), *input_shape]}: the rows `idx` of `df`, prepared.

        Tabular inputs are gathered from their columns and scaled block by block in one
        pass (`dlexp.data.gather`), equal bit for bit to `transform_x` on those rows. A
        lazy `df` (a scan not yet checked: see `dlexp.data.table`) is read as it is cut, and
        raises `NotFinite` if it holds a null, NaN or inf.
        """
        if self.image or self.sequence or self.text:
            x = self.transform_x(df.collect() if isinstance(df, pl.LazyFrame) else df)
            return {s: x[idx] for s, idx in rows.items()}
        schema = df.collect_schema()
        pending = [c for c in self.moment_columns(schema) if c not in self.stats]  # fit(defer_moments=True)
        xs = self._cut_fitting_moments(df, rows, pending) if pending else None
        if xs is None:
            exprs, affine = zip(*self._inputs(schema, defer_scale=True))
            xs = gather_rows(df.select(exprs), rows, *np.asarray(affine, np.float64).T)
        shape = self.image_shape or []
        return {s: x.reshape((x.shape[0], *shape)) if shape else x for s, x in xs.items()}

    def _cut_fitting_moments(
        self, df: pl.DataFrame | pl.LazyFrame, rows: dict[str, np.ndarray], pending: list[str]
    ) -> dict[str, np.ndarray] | None:
        """The cut of `transform_rows` that also fits the deferred standard scaling (fit's
        defer_moments) from the train rows as they pass (`gather_moments`), then scales in
        place. Where float32 sums cannot serve, Polars fits those columns (`fit_moments`,
        as on the streamed path). None if a fitted column is then too large for float32
        arithmetic: the caller cuts again, that column scaled by Polars in float64."""
        schema = df.collect_schema()  # a DataFrame builds its schema anew at every call
        exprs, _ = zip(*self._inputs(schema, defer_scale=True))  # pending columns: no stats yet, unscaled
        table = df.select(exprs)
        names = table.collect_schema().names()
        xs, m = gather_moments(table, rows, "train")
        if isinstance(df, pl.LazyFrame) and not m.all_finite:
            raise NotFinite(f"features of {len(pending)} columns")
        where = [names.index(c) for c in pending]
        stats = self._moment_stats(None, pending, Moments(m.count, m.shift[where], m.sum[where], m.sum_sq[where]))
        if stats is None:
            mask = np.zeros(df.height if isinstance(df, pl.DataFrame) else df.select(pl.len()).collect().item(), bool)
            mask[rows["train"]] = True
            stats = self.fit_moments(df.lazy().filter(pl.lit(pl.Series("__train", mask))), pending)
        self.stats.update(stats)
        if not all(self._float32_exact(c, schema[c]) for c in pending):
            return None
        _, affine = zip(*self._inputs(schema, defer_scale=True))
        scale_rows(xs, *np.asarray(affine, np.float64).T)
        return xs

    def transform(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(x float32 [n, *input_shape], y) for a frame holding the input and label columns."""
        return self.transform_x(df), self.labels(df)

    def labels(self, df: pl.DataFrame, cache_dir: str | None = None) -> np.ndarray:
        """The label column prepared; text without a label (a language model's) has none: zeros;
        seq2seq: the target text's int32 token ids."""
        if self.target_text:
            return text.encode_cached(self.trained_tokenizer, df.get_column(self.target_text), cache_dir)
        if self.task == "language_model":
            return np.zeros(df.height, np.int32)
        return self.transform_label(df.get_column(self.label))

    def transform_weight(self, df: pl.DataFrame) -> np.ndarray | None:
        """float32 [n] sample weights (dataset.weight), or None (`Dataset` checks their values)."""
        if not self.weight:
            return None
        w = df.get_column(self.weight)
        if not w.dtype.is_numeric():
            raise DataError(f"weight column {self.weight!r} (dataset.weight) must be numeric; it is {w.dtype}")
        if w.null_count():
            raise DataError(f"weight column {self.weight!r} holds {w.null_count()} nulls")
        return w.cast(pl.Float32).to_numpy()

    def transform_label(self, y: pl.Series) -> np.ndarray:
        if self.task == "classification":
            index = {v: i for i, v in enumerate(self.classes or [])}
            unseen = set(y.unique().to_list()) - set(index)
            if unseen:
                raise DataError(
                    f"label column {self.label!r} holds classes the run was not trained on: "
                    f"{sorted(map(str, unseen))[:10]}"
                )
            return y.replace_strict(index, return_dtype=pl.Int32).to_numpy()
        t = self.target
        return ((y.cast(pl.Float64) - t["mean"]) / t["std"]).cast(pl.Float32).to_numpy()

    def _image_array(self, frame: pl.DataFrame) -> np.ndarray:
        assert self.image is not None  # an image data set
        s = frame.get_column(self.image)
        if s.null_count():
            raise DataError(f"image column {self.image!r} holds {s.null_count()} null images")
        if isinstance(s.dtype, pl.List):
            n = int(np.prod(self.image_shape)) if self.image_shape else None
            lengths = s.list.len().unique().to_list()
            if n is None or lengths != [n]:
                raise DataError(
                    f"image column {self.image!r} holds lists of lengths {sorted(lengths)[:5]}; every image needs "
                    f"dataset.image_shape={self.image_shape} = {n} values"
                )
            s = s.list.to_array(n)
        x = s.to_numpy().astype(np.float32, copy=False)
        shape = self.image_shape or (list(x.shape[1:]) + [1] if x.ndim == 3 else list(x.shape[1:]))
        if int(np.prod(shape)) != int(np.prod(x.shape[1:])) or len(shape) != 3:
            raise DataError(
                f"image column {self.image!r} holds {list(x.shape[1:])} values per row; set dataset.image_shape "
                f"to [H, W, C] with that many values (now {self.image_shape})"
            )
        self.image_shape = [int(v) for v in shape]
        return x.reshape((x.shape[0], *shape))

    def _sequence_array(self, df: pl.DataFrame, c: str) -> np.ndarray:
        """[n, length]: scaled values, cut to `sequence_length`, zero-padded at the end."""
        L = int(self.sequence_length or 0)
        s = self.stats.get(c)
        e = pl.element().cast(pl.Float64).fill_null(0.0)
        e = _scaled(e, s)
        pad = pl.lit([0.0] * L, dtype=pl.List(pl.Float64))
        col = pl.col(c).fill_null([]).list.eval(e).list.head(L).list.concat(pad).list.head(L).list.to_array(L)
        return df.select(col).to_series().to_numpy().astype(np.float32)

    # ---------------------------------------------------------------- save
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Prep:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _scaled(e: pl.Expr, s: dict | None, dtype: DType = pl.Float64) -> pl.Expr:
    """(e - shift) / size. In float32 the shift is taken off in two parts, hi (the nearest
    float32) then the remainder: x - hi is exact for x near the shift, so the result does
    not carry the rounding of the mean into every value."""
    if not s:
        return e
    shift, size = (s["mean"], s["std"]) if "mean" in s else (s["min"], s["range"])
    if dtype != pl.Float32:
        return (e - shift) / size
    hi = float(np.float32(shift))
    e = e - pl.lit(hi, dtype=dtype)
    if shift != hi:
        e = e - pl.lit(shift - hi, dtype=dtype)
    return e / pl.lit(size, dtype=dtype)


def _float32_affine(s: dict) -> tuple[float, float, float]:
    """`_scaled`'s float32 constants: (shift_hi, shift_lo, size), each a float32 value."""
    shift, size = (s["mean"], s["std"]) if "mean" in s else (s["min"], s["range"])
    hi = float(np.float32(shift))
    lo = float(np.float32(shift - hi)) if shift != hi else 0.0
    return hi, lo, float(np.float32(size))


def _column_aggregates(train: pl.LazyFrame, *groups: list[pl.Expr]) -> list[tuple]:
    """Every group of per-column aggregates in one pass over `train` (the streaming engine
    casts and aggregates chunk by chunk, so no Float64 copy of the table is made)."""
    exprs = [e.alias(f"{g}:{i}") for g, group in enumerate(groups) for i, e in enumerate(group)]
    row = train.select(exprs).collect(engine="streaming").row(0) if exprs else ()
    out, start = [], 0
    for group in groups:
        out.append(row[start : start + len(group)])
        start += len(group)
    return out


def _channel_stats(train: pl.LazyFrame, cols: list[str], channels: int) -> dict[str, Any]:
    """Pixel columns in H, W, C order: one mean and std per channel, over all its pixels."""
    out = {}
    for ch in range(channels):
        mine = [c for i, c in enumerate(cols) if i % channels == ch]
        v = train.select(pl.concat_list([pl.col(c).cast(pl.Float64) for c in mine]).alias("v")).explode("v")
        m, s = v.select(pl.col("v").mean().alias("m"), pl.col("v").std(ddof=0).alias("s")).collect().row(0)
        out.update({c: {"mean": float(m or 0.0), "std": safe_scale(s)} for c in mine})
    return out


def standard_stats(count: int, shift: float, s1: float, s2: float) -> dict[str, float] | None:
    """{mean, std} from `Moments` sums: mean = shift + s1/n, var = s2/n - (s1/n)^2. Summed
    around the first row, the two terms stay close to the variance itself unless the
    spread dwarfs the first row's distance from the mean. None if not finite."""
    if count <= 0 or not (math.isfinite(s1) and math.isfinite(s2)):
        return None
    m1 = s1 / count
    return {"mean": shift + m1, "std": safe_scale(math.sqrt(max(s2 / count - m1 * m1, 0.0)))}


def category_values(train: pl.LazyFrame, c: str) -> list:
    """The distinct non-null values of categorical column c in `train`."""
    return train.select(pl.col(c).drop_nulls().unique()).collect().to_series().to_list()


def ordered_categories(values) -> list:
    """Categories in their encoding order: sorted, numbers and strings apart."""
    return sorted(values, key=lambda v: (str(type(v)), v))


def safe_scale(v) -> float:
    """A scale that is 0 or missing (a constant column) divides by 1 instead."""
    v = float(v) if v is not None else 0.0
    return v if v > 1e-12 and np.isfinite(v) else 1.0
