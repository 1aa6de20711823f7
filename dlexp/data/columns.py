"""The feature spec: which columns of a table feed the model, and as what.

Config names columns by list; an entry written `^...$` is a regular expression
(Polars' own convention), so `features: ["^px_.*$"]` selects every pixel column.
Every name is checked against the file, and a bad one lists the columns that exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from dlexp.errors import DataError


@dataclass
class Columns:
    """Resolved column roles, in file order."""

    label: str | None  # None: no label (a language model's text)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    image: str | None = None  # one Array or List column holding H*W*C values per row
    sequence: list[str] = field(default_factory=list)  # List columns, padded / cut to a length
    weight: str | None = None
    text: list[str] = field(default_factory=list)  # String columns, tokenized (dlexp/data/text.py)

    @property
    def inputs(self) -> list[str]:
        return self.numeric + self.categorical + ([self.image] if self.image else []) + self.sequence + self.text

    @property
    def all(self) -> list[str]:
        return self.inputs + ([self.label] if self.label else []) + ([self.weight] if self.weight else [])


def select(names: list[str] | str | None, columns: list[str], key: str, path: str) -> list[str]:
    """Column names from a list of names and `^regex$` patterns, in file order."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    chosen: set[str] = set()
    for n in names:
        n = str(n)
        if n.startswith("^") and n.endswith("$"):
            try:
                hits = [c for c in columns if re.fullmatch(n[1:-1], c)]
            except re.error as e:
                raise DataError(f"{key}: {n!r} is not a valid regular expression ({e})") from None
            if not hits:
                raise DataError(f"{key}: the pattern {n!r} matches no column of {path}; columns: {_list(columns)}")
            chosen.update(hits)
        elif n in columns:
            chosen.add(n)
        else:
            raise DataError(f"{key} names {n!r}, not a column of {path}; columns: {_list(columns)}")
    return [c for c in columns if c in chosen]


def resolve(
    schema: pl.Schema,
    path: str,
    *,
    label: str | None,
    features=None,
    categorical=None,
    image=None,
    sequence=None,
    text=None,
    weight=None,
    drop=None,
    exclude: tuple[str, ...] = (),
    frame: pl.LazyFrame | None = None,
) -> Columns:
    """Checks every named column and gives each feature its role.

    features=None means every column not named elsewhere (label, weight, drop, `exclude`).
    A string or unknown column among the numeric features is an error that says what to do;
    `frame` (the table) lets it say which text column holds numbers but for a few values.
    label=None: text without a label, a language model's data.
    """
    columns = list(schema.names())
    if label is None and not text:
        raise DataError(f"dataset.label must name the target column of {path}; columns: {_list(columns)}")
    if label is not None and label not in schema:
        raise DataError(f"dataset.label={label!r} is not a column of {path}; columns: {_list(columns)}")
    if weight is not None and weight not in schema:
        raise DataError(f"dataset.weight={weight!r} is not a column of {path}; columns: {_list(columns)}")
    if image is not None and image not in schema:
        raise DataError(f"dataset.image={image!r} is not a column of {path}; columns: {_list(columns)}")
    dropped = set(select(drop, columns, "dataset.drop", path))
    cats = select(categorical, columns, "dataset.categorical", path)
    seqs = select(sequence, columns, "dataset.sequence", path)
    texts = select(text, columns, "dataset.text", path)
    taken = {label, weight, image, *exclude, *dropped, *texts}
    if features is None:
        numeric = [c for c in columns if c not in taken and c not in cats and c not in seqs]
        if image is not None or texts:
            numeric = []  # an image or text column is the input; name extra columns explicitly
    else:
        numeric = [c for c in select(features, columns, "dataset.features", path) if c not in cats and c not in seqs]
    numeric = [c for c in numeric if c not in taken]
    bad = [c for c in numeric if not (schema[c].is_numeric() or schema[c] == pl.Boolean)]
    if bad:
        mixed = _mostly_numbers(frame, [c for c in bad if schema[c] == pl.String]) if frame is not None else {}
        if mixed:
            listed = "; ".join(
                f"{c!r} ({n} of {total} values are text, e.g. {example!r})" for c, (n, total, example) in mixed.items()
            )
            raise DataError(
                f"feature columns of {path} mix numbers and text: {listed}; fix or drop those rows "
                "(a feature column holds numbers only), or declare the column in dataset.categorical"
            )
        listed = ", ".join(f"{c} ({schema[c]})" for c in bad)
        raise DataError(
            f"non-numeric feature columns in {path}: {listed}; declare them in dataset.categorical (or a text "
            "column in dataset.text), drop them with dataset.drop, or list only numeric columns in dataset.features"
        )
    if image is not None and not isinstance(schema[image], (pl.Array, pl.List)):
        raise DataError(f"dataset.image={image!r} is {schema[image]}; it must be an Array or List column of pixels")
    for c in seqs:
        if not isinstance(schema[c], (pl.List, pl.Array)):
            raise DataError(f"dataset.sequence names {c!r}, which is {schema[c]}; a sequence column must be a List")
    for c in texts:
        if schema[c] != pl.String:
            raise DataError(f"dataset.text names {c!r}, which is {schema[c]}; a text column must hold strings")
    if len(texts) > 1:
        raise DataError(f"dataset.text names {len(texts)} columns ({', '.join(texts)}); a model reads one text column")
    cols = Columns(label, numeric, cats, image, seqs, weight, texts)
    kinds = sum(bool(k) for k in (numeric or cats, image, seqs, texts))
    if kinds == 0:
        raise DataError(f"dataset.features: no feature columns left in {path} (columns: {_list(columns)})")
    if kinds > 1:
        raise DataError(
            "dataset: an image column, sequence columns, a text column and tabular columns cannot feed one model "
            f"input; got image={image}, sequence={seqs}, text={texts}, tabular={numeric + cats}: "
            "set dataset.features=[] or choose one"
        )
    return cols


def _mostly_numbers(frame: pl.LazyFrame, columns: list[str]) -> dict[str, tuple[int, int, str]]:
    """{column: (text values, values, first text value)} for the text columns whose values are
    mostly numbers: a typo or a stray marker in a numeric column, not a categorical one."""
    if not columns:
        return {}
    exprs = []
    for c in columns:
        text = pl.col(c).is_not_null() & pl.col(c).str.strip_chars().cast(pl.Float64, strict=False).is_null()
        exprs += [
            text.sum().alias(f"n:{c}"),
            pl.col(c).is_not_null().sum().alias(f"all:{c}"),
            pl.col(c).filter(text).first().alias(f"e:{c}"),
        ]
    row = frame.select(exprs).collect().row(0, named=True)
    return {
        c: (row[f"n:{c}"], row[f"all:{c}"], row[f"e:{c}"]) for c in columns if 0 < row[f"n:{c}"] <= row[f"all:{c}"] // 2
    }


def _list(columns: list[str], limit: int = 40) -> str:
    more = f", ... ({len(columns) - limit} more)" if len(columns) > limit else ""
    return ", ".join(columns[:limit]) + more
