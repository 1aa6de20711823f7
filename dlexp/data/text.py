"""Text columns: a tokenizer trained on the train split, and token ids padded to a length.

`dataset.tokenizer` is a `TokenizerConfig`: byte-level BPE, WordPiece or characters,
trained with Hugging Face `tokenizers` (Rust) on the train rows only. Every sequence is
[BOS] tokens [EOS], cut to `max_length` and padded with id 0, so a model finds its mask
as `ids != PAD_ID` and no second array travels with the batch. The trained tokenizer is
saved beside prep.json (`TOKENIZER_FILE`), and evaluate / predict read it back.

Tokenizers and token ids are cached under paths.cache keyed by what they are made of
(the texts' content hash, the tokenizer), so a second run or `dlexp.evaluate` on the same
file neither trains nor encodes again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import polars as pl
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from dlexp.errors import DataError

KINDS = ("bpe", "wordpiece", "char")
NORMALIZATIONS = ("nfkc", "nfc", "nfd", "nfkd", "none")
SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")  # ids 0..3, in this order
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(len(SPECIALS))
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class TokenizerConfig:
    """`dataset.tokenizer`: how a text column becomes token ids."""

    kind: str = "bpe"  # bpe (byte-level) | wordpiece | char
    vocab_size: int = 8000  # at most; a small train split may give fewer
    max_length: int = 128  # tokens per row, [BOS] and [EOS] included
    lowercase: bool = True
    normalize: str = "nfkc"  # Unicode normalization: nfkc | nfc | nfd | nfkd | none

    @classmethod
    def from_node(cls, node: dict[str, Any] | None) -> TokenizerConfig:
        """Checked config from the dataset node; a bad key or value names `dataset.tokenizer.<key>`."""
        node = dict(node or {})
        known = [f.name for f in fields(cls)]
        unknown = [k for k in node if k not in known]
        if unknown:
            raise DataError(f"dataset.tokenizer.{unknown[0]} is not a tokenizer option; valid: {', '.join(known)}")
        cfg = cls(**node)
        if cfg.kind not in KINDS:
            raise DataError(f"dataset.tokenizer.kind={cfg.kind!r} is not valid; choose one of {', '.join(KINDS)}")
        if cfg.normalize not in NORMALIZATIONS:
            raise DataError(
                f"dataset.tokenizer.normalize={cfg.normalize!r} is not valid; choose one of {', '.join(NORMALIZATIONS)}"
            )
        if not isinstance(cfg.max_length, int) or cfg.max_length < 3:
            raise DataError(f"dataset.tokenizer.max_length={cfg.max_length!r} must be an integer >= 3 ([BOS] x [EOS])")
        if not isinstance(cfg.vocab_size, int) or cfg.vocab_size <= len(SPECIALS):
            raise DataError(f"dataset.tokenizer.vocab_size={cfg.vocab_size!r} must be an integer > {len(SPECIALS)}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _untrained(cfg: TokenizerConfig) -> tuple[Tokenizer, Any]:
    """A tokenizer of `cfg.kind` with its normalization, and the trainer that fits its vocabulary."""
    specials = list(SPECIALS)
    if cfg.kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif cfg.kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, special_tokens=specials, show_progress=False)
    else:  # every character a token, spaces included; the rarest beyond vocab_size are [UNK]
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(vocab_size=cfg.vocab_size, special_tokens=specials, show_progress=False)
    steps = [] if cfg.normalize == "none" else [getattr(normalizers, cfg.normalize.upper())()]
    steps += [normalizers.Lowercase()] if cfg.lowercase else []
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", BOS_ID), ("[EOS]", EOS_ID)]
    )
    return tok, trainer


def train_tokenizer(texts: Sequence[str], cfg: TokenizerConfig) -> Tokenizer:
    """A tokenizer fitted on `texts` (the train rows), padding and cutting to cfg.max_length."""
    tok, trainer = _untrained(cfg)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    if [tok.token_to_id(s) for s in SPECIALS] != list(range(len(SPECIALS))):
        raise AssertionError("special tokens must hold ids 0..3")  # the trainers put them first
    return with_length(tok, cfg.max_length)


def with_length(tok: Tokenizer, max_length: int) -> Tokenizer:
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=PAD_ID, pad_token=SPECIALS[PAD_ID], length=max_length)
    return tok


def encode(tok: Tokenizer, texts: pl.Series | Sequence[str]) -> np.ndarray:
    """int32 [n, max_length] token ids, encoded in parallel by the Rust side (`encode_batch_fast`:
    no character offsets, which nothing here reads). A null text is the empty string."""
    if isinstance(texts, pl.Series):
        texts = texts.cast(pl.String).fill_null("").to_list()
    encodings = tok.encode_batch_fast(list(texts), add_special_tokens=True)
    length = (tok.padding or {}).get("length") or max((len(e.ids) for e in encodings), default=0)
    out = np.empty((len(encodings), length), np.int32)
    for i, e in enumerate(encodings):
        out[i] = e.ids
    return out


def decode(tok: Tokenizer, ids: np.ndarray) -> list[str]:
    """Texts of rows of token ids, read up to the first [EOS] (specials left out)."""
    rows = []
    for row in np.asarray(ids).tolist():
        if EOS_ID in row:
            row = row[: row.index(EOS_ID)]
        rows.append(row)
    return [t.strip() for t in tok.decode_batch(rows, skip_special_tokens=True)]


def digest(tok: Tokenizer) -> str:
    """Names a trained tokenizer: prep.json keeps it, so a tokenizer that changed is noticed."""
    return hashlib.sha1(tok.to_str().encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- cache


def content_key(texts: pl.Series, *parts: Any) -> str:
    """A cache key from the texts' content (Polars' row hashes, computed in parallel) and `parts`."""
    h = hashlib.sha1(texts.cast(pl.String).hash(seed=0).to_numpy().tobytes())
    h.update(repr((len(texts), pl.__version__, *parts)).encode())
    return h.hexdigest()[:20]


def _cache_path(cache_dir: str | None, name: str) -> str | None:
    if not cache_dir:
        return None
    folder = os.path.join(os.path.expanduser(cache_dir), "text")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)


def _atomic(path: str, write) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    write(tmp)
    os.replace(tmp, path)


def fit_cached(texts: pl.Series, cfg: TokenizerConfig, cache_dir: str | None) -> Tokenizer:
    """`train_tokenizer` on the train texts, or the one trained before on the same texts and config."""
    path = _cache_path(cache_dir, f"tok_{content_key(texts, cfg.to_dict())}.json")
    if path and os.path.exists(path):
        return with_length(Tokenizer.from_file(path), cfg.max_length)
    tok = train_tokenizer(texts.cast(pl.String).fill_null("").to_list(), cfg)
    if path:
        _atomic(path, lambda tmp: tok.save(tmp))
    return tok


def encode_cached(tok: Tokenizer, texts: pl.Series, cache_dir: str | None) -> np.ndarray:
    """`encode`, or the ids encoded before from the same texts with the same tokenizer. Stored
    as uint16 where the vocabulary fits (half the bytes to write and read back)."""
    path = _cache_path(cache_dir, f"ids_{content_key(texts, digest(tok))}.npy")
    if path and os.path.exists(path):
        return np.load(path).astype(np.int32)
    ids = encode(tok, texts)
    if path:
        small = ids.astype(np.uint16) if tok.get_vocab_size() <= 2**16 else ids
        _atomic(path, lambda tmp: np.save(open(tmp, "wb"), small))
    return ids


# ---------------------------------------------------------------------------- run dir


def save(tok: Tokenizer, run_dir: str) -> None:
    """The trained tokenizer beside prep.json."""
    _atomic(os.path.join(run_dir, TOKENIZER_FILE), lambda tmp: tok.save(tmp))


def load(run_dir: str, max_length: int) -> Tokenizer:
    path = os.path.join(run_dir, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise DataError(f"{run_dir} trained on text but has no {TOKENIZER_FILE}; it is written beside prep.json")
    return with_length(Tokenizer.from_file(path), max_length)
