"""`dataset=dates`: dates written as people write them, to translate into ISO 8601.

A generated seq2seq data set that needs no download: each row is a random day between
1950 and 2049 written in one of `FORMATS` ("12 March 2021", "March 12, 2021",
"Fri, 12 Mar 2021", "12.03.2021", ...) as `source`, and "2021-03-12" as `target`. A model
must read the month's name or number, reorder the fields and pad with zeros, so it is a
small translation task with one right answer (exact match is meaningful beside BLEU).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from dlexp.data.builtin import cached_parquet, spec_digest
from dlexp.data.dataset import Dataset
from dlexp.data.table import table
from dlexp.errors import DataError

FIRST_DAY, LAST_DAY = dt.date(1950, 1, 1), dt.date(2049, 12, 31)
FORMATS = (
    "{d} {B} {Y}",  # 12 March 2021
    "{B} {d}, {Y}",  # March 12, 2021
    "{a}, {d} {b} {Y}",  # Fri, 12 Mar 2021
    "{A} {d} {B} {Y}",  # Friday 12 March 2021
    "{b} {d} {Y}",  # Mar 12 2021
    "{dd}.{mm}.{Y}",  # 12.03.2021
    "{m}/{d}/{Y}",  # 3/12/2021 (month first)
    "{Y}/{mm}/{dd}",  # 2021/03/12
    "{d}{th} of {B}, {Y}",  # 12th of March, 2021
)


def ordinal_suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def written(day: dt.date, form: str) -> str:
    return form.format(
        d=day.day,
        dd=f"{day.day:02d}",
        m=day.month,
        mm=f"{day.month:02d}",
        Y=day.year,
        B=day.strftime("%B"),
        b=day.strftime("%b"),
        A=day.strftime("%A"),
        a=day.strftime("%a"),
        th=ordinal_suffix(day.day),
    )


def date_frame(rows: int, seed: int) -> pl.DataFrame:
    """`rows` random days (`source`: written in a random format, `target`: ISO 8601)."""
    rng = np.random.default_rng(seed)
    span = (LAST_DAY - FIRST_DAY).days + 1
    days = [FIRST_DAY + dt.timedelta(days=int(i)) for i in rng.integers(span, size=rows)]
    forms = rng.integers(len(FORMATS), size=rows)
    return pl.DataFrame(
        {
            "source": [written(day, FORMATS[f]) for day, f in zip(days, forms)],
            "target": [day.isoformat() for day in days],
        }
    )


def dates(
    *,
    cache_dir: str,
    rows: int = 5000,
    data_seed: int = 0,
    tokenizer: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """Generated date translations (see `date_frame`), `data_seed` fixing the rows, `seed` the split.
    The task is always seq2seq: `source` is the text column, `target` the target text."""
    if rows < 10:
        raise DataError(f"dataset.rows={rows} must be at least 10")
    path = cached_parquet(
        cache_dir,
        f"dates_{spec_digest(rows=rows, seed=data_seed, formats=FORMATS)}",
        lambda: date_frame(rows, data_seed),
    )
    split = {"split": "random", "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    return table(
        path=path, label=None, text=["source"], target_text="target", tokenizer=tokenizer, cache_dir=cache_dir, **split
    )
