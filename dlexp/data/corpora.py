"""Built-in text data sets that need no network, read through `dlexp.data.table.table`
like a user's own CSV (each is written once to Parquet under `paths.cache`).

python_docs  real English: the sentences of Python's own reference manual (the
             `pydoc_data` topics every Python install ships), for language models
reviews      generated movie reviews with a sentiment label: clauses of a subject and a
             positive or negative word, some negated ("was not great"), labelled by the
             majority of their clauses' polarities, for text classification
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl

from dlexp.data.builtin import cached_parquet, spec_digest
from dlexp.data.dataset import Dataset
from dlexp.data.table import table
from dlexp.errors import DataError

SUBJECTS = [
    "the movie",
    "this film",
    "the plot",
    "the acting",
    "the soundtrack",
    "the ending",
    "the cast",
    "the script",
]
POSITIVE = ["great", "wonderful", "brilliant", "moving", "excellent", "delightful", "superb", "charming", "gripping"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "weak", "clumsy", "tedious", "bland", "predictable"]
ADVERBS = ["", "really ", "truly ", "quite ", "rather "]
SENTENCE_CHARS = (20, 300)  # python_docs keeps sentences of this many characters (no headings, no tables)
ASIDES = ["I watched it on a Sunday.", "My friend recommended it.", "It runs two hours.", "I saw it twice.", ""]


def python_docs(
    *,
    cache_dir: str,
    tokenizer: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    task: str = "auto",
) -> Dataset:
    """One row per sentence of the Python reference manual (`sentence`, and its `topic`), no label."""
    digest = spec_digest(chars=SENTENCE_CHARS)

    def make() -> pl.DataFrame:
        from pydoc_data.topics import topics

        rows = []
        for topic, body in sorted(topics.items()):
            for paragraph in re.split(r"\n\s*\n", body):
                for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(paragraph.split())):
                    if SENTENCE_CHARS[0] <= len(sentence) <= SENTENCE_CHARS[1] and "***" not in sentence:
                        rows.append((topic, sentence))
        return pl.DataFrame(rows, schema=["topic", "sentence"], orient="row")

    path = cached_parquet(cache_dir, f"python_docs_{digest}", make)
    kw = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, task=task, cache_dir=cache_dir)
    return table(path=path, label=None, text=["sentence"], tokenizer=tokenizer, split="random", **kw)


def review_frame(rows: int, seed: int) -> pl.DataFrame:
    """`rows` generated reviews (`review`, `sentiment`: pos | neg). One or three clauses, so
    the majority is never a tie; a negated word counts with the opposite polarity."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(rows):
        clauses, score = [], 0
        for _ in range(rng.choice([1, 3])):
            good, negated = bool(rng.integers(2)), rng.random() < 0.25
            word = rng.choice(POSITIVE if good else NEGATIVE)
            verb = "was not" if negated else "was"
            clauses.append(f"{rng.choice(SUBJECTS)} {verb} {rng.choice(ADVERBS)}{word}")
            score += 1 if good != negated else -1
        aside = rng.choice(ASIDES)
        texts.append((", and ".join(clauses) + ". " + aside).strip().capitalize())
        labels.append("pos" if score > 0 else "neg")
    return pl.DataFrame({"review": texts, "sentiment": labels})


def reviews(
    *,
    cache_dir: str,
    rows: int = 2000,
    data_seed: int = 0,
    tokenizer: dict[str, Any] | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    task: str = "auto",
) -> Dataset:
    """Generated sentiment reviews (see `review_frame`), `data_seed` fixing the rows, `seed` the split."""
    if rows < 10:
        raise DataError(f"dataset.rows={rows} must be at least 10")
    path = cached_parquet(
        cache_dir, f"reviews_{spec_digest(rows=rows, seed=data_seed)}", lambda: review_frame(rows, data_seed)
    )
    kw = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, task=task, cache_dir=cache_dir)
    return table(path=path, label="sentiment", text=["review"], tokenizer=tokenizer, **kw)
