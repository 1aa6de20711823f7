"""Text columns: tokenizers fitted on train, token ids into embedding models, text
classification and a language model through the real CLI, evaluate / predict on new files."""

import jax.numpy as jnp
import numpy as np
import polars as pl
import pytest
from conftest import read_json
from flax import nnx
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlexp.data import text
from dlexp.data.corpora import review_frame
from dlexp.data.table import table
from dlexp.errors import DataError
from dlexp.models import RNN, Transformer

SHORT = [
    "trainer.batch_size=32",
    "trainer.progress=false",
    "trainer.parallel=single",
    "trainer.checkpoint.async_save=false",
    "logger.jsonl=false",
]


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "reviews.csv"
    review_frame(1000, seed=1).write_csv(path)
    return path


@pytest.mark.parametrize("kind", text.KINDS)
def test_each_tokenizer_pads_cuts_and_decodes(kind):
    cfg = text.TokenizerConfig(kind=kind, vocab_size=300, max_length=10)
    tok = text.train_tokenizer(["The film was GREAT", "the plot was dull"] * 20, cfg)
    ids = text.encode(tok, pl.Series(["the film was great", None, "word " * 30]))
    assert ids.dtype == np.int32 and ids.shape == (3, 10)
    assert ids[:, 0].tolist() == [text.BOS_ID] * 3 and ids[1, :3].tolist() == [text.BOS_ID, text.EOS_ID, 0]
    assert ids[2, -1] == text.EOS_ID  # cut to max_length, [EOS] kept
    shown = text.decode(tok, ids[:1])[0].replace(" ", "")
    assert len(shown) >= 7 and "thefilmwasgreat".startswith(shown)  # lowercased (char: 8 tokens fit)


def test_the_tokenizer_sees_only_train_rows_and_is_cached(tmp_path, reviews_csv):
    df = pl.read_csv(reviews_csv).with_columns(pl.lit("train").alias("part"))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) < 60).then(pl.lit("val")).otherwise("part").alias("part"))
    df = df.with_columns(
        pl.when(pl.col("part") == "val").then(pl.lit("zyzzyva quokka")).otherwise("review").alias("review"),
        pl.when(pl.int_range(pl.len()) % 60 == 1).then(pl.lit("test")).otherwise("part").alias("part"),
    )
    df.write_csv(tmp_path / "d.csv")
    kw = dict(
        path=str(tmp_path / "d.csv"),
        label="sentiment",
        text=["review"],
        tokenizer={"kind": "wordpiece", "vocab_size": 200, "max_length": 24},
        split="column",
        split_column="part",
        cache_dir=str(tmp_path / "cache"),
    )
    data = table(**kw)
    assert data.x["train"].dtype == np.int32 and data.input_shape == (24,)
    assert "zyzzyva" not in data.tokenizer.get_vocab() and data.vocab_size <= 200
    assert text.UNK_ID in data.x["val"]  # words only val holds are unknown to the train tokenizer
    again = table(**kw)  # tokenizer and ids from the cache: the same
    assert data.prep["tokenizer_digest"] == again.prep["tokenizer_digest"]
    np.testing.assert_array_equal(data.x["val"], again.x["val"])
    assert len(list((tmp_path / "cache" / "text").glob("ids_*.npy"))) == 1


@pytest.mark.parametrize("model", ["lstm", "bilstm_mean", "transformer_cls", "transformer_mean"])
def test_padding_does_not_reach_the_features(model):
    """The [PAD] embedding row is changed: a model that masks its padding gives the same features."""
    kw = dict(in_shape=(12,), num_outputs=3, vocab_size=20, rngs=nnx.Rngs(0))
    net = {
        "lstm": lambda: RNN(**kw, hidden=8, embed=8),
        "bilstm_mean": lambda: RNN(**kw, hidden=8, embed=8, bidirectional=True, readout="mean"),
        "transformer_cls": lambda: Transformer(**kw, dim=8, heads=2, dropout=0.0),
        "transformer_mean": lambda: Transformer(**kw, dim=8, heads=2, dropout=0.0, pool="mean"),
    }[model]()
    net.eval()
    ids = jnp.array([[2, 5, 6, 7, 3] + [0] * 7, [2, 9, 3] + [0] * 9], jnp.int32)
    features = nnx.jit(lambda m, x: m.features(x))
    before = features(net, ids)
    net.embed.embedding[...] = net.embed.embedding[...].at[0].set(5.0)
    np.testing.assert_allclose(features(net, ids), before, atol=1e-5)


@pytest.mark.parametrize("make", [RNN, Transformer])
def test_a_causal_model_predicts_each_position_from_earlier_tokens_only(make):
    net = make(in_shape=(8,), num_outputs=20, vocab_size=20, causal=True, rngs=nnx.Rngs(0))
    net.eval()
    a = jnp.array([[2, 5, 6, 7, 8, 9, 10, 3]], jnp.int32)
    b = a.at[0, 5:].set(jnp.array([11, 12, 3]))
    la, lb = nnx.jit(lambda m, x: m(x))(net, jnp.concatenate([a, b]))
    assert la.shape == (8, 20)
    np.testing.assert_allclose(la[:5], lb[:5], atol=1e-5)
    assert not np.allclose(la[5:], lb[5:])


def test_bad_text_options_name_the_key(tmp_path, reviews_csv, cli):
    with pytest.raises(DataError, match=r"dataset\.text names 'body', not a column of .*columns: review, sentiment"):
        table(path=str(reviews_csv), label="sentiment", text=["body"])
    with pytest.raises(
        DataError, match=r"dataset\.tokenizer\.vocab is not a tokenizer option; valid: kind, vocab_size"
    ):
        table(path=str(reviews_csv), label="sentiment", text=["review"], tokenizer={"vocab": 3})
    with pytest.raises(DataError, match=r"dataset\.label must name the target column"):
        table(path=str(reviews_csv), label=None)
    proc = cli(
        "dataset=csv",
        f"dataset.path={reviews_csv}",
        "dataset.label=sentiment",
        "dataset.text=[review]",
        "dataset.tokenizer.kind=sentencepiece",
        "model=lstm",
    )
    assert proc.returncode == 2
    assert "dataset.tokenizer.kind='sentencepiece' is not valid; choose one of bpe, wordpiece, char" in proc.stderr


def test_text_classification_trains_evaluates_and_predicts_a_new_csv(tmp_path, reviews_csv, cli):
    from dlexp import evaluate
    from dlexp.saved_run import load_run

    cli(
        "dataset=csv",
        f"dataset.path={reviews_csv}",
        "dataset.label=sentiment",
        "dataset.text=[review]",
        "dataset.tokenizer={kind: wordpiece, vocab_size: 200, max_length: 24}",
        "model=lstm",
        "model.hidden=32",
        "model.embed=32",
        "trainer.steps=100",
        "trainer.eval_every=50",
        "optimizer.lr=1e-2",
        "hydra.run.dir=run",
        *SHORT,
        check=True,
    )
    run_dir = tmp_path / "run"
    assert (run_dir / "tokenizer.json").exists() and read_json(run_dir / "prep.json")["text"] == ["review"]
    summary = read_json(run_dir / "summary.json")
    assert summary["test"]["accuracy"] > 0.6
    new = tmp_path / "new.csv"
    review_frame(40, seed=7).with_row_index("id").write_csv(new)
    result = evaluate.evaluate(load_run(str(run_dir)), path=str(new))
    assert result["rows"] == 40 and 0.0 <= result["metrics"]["accuracy"] <= 1.0
    out = tmp_path / "p.parquet"
    cli(str(run_dir), f"path={new}", f"out={out}", module="dlexp.predict", check=True)
    df = pl.read_parquet(out)
    assert df.columns == ["id", "review", "sentiment", "prediction", "prob_neg", "prob_pos"]
    assert (df["prediction"] == df["sentiment"]).mean() > 0.6


def test_a_language_model_learns_and_writes_samples(tmp_path, cli):
    from dlexp import predict
    from dlexp.saved_run import load_run

    cli(
        "dataset=python_docs",
        "dataset.tokenizer={kind: char, vocab_size: 80, max_length: 48}",
        "model=lstm",
        "model.causal=true",
        "model.hidden=64",
        "model.dropout=0.0",
        "trainer.steps=60",
        "trainer.eval_every=30",
        "trainer.log_every=30",
        "optimizer.lr=1e-2",
        "objective.metric=val/perplexity",
        "hydra.run.dir=run",
        *SHORT,
        check=True,
    )
    run_dir = tmp_path / "run"
    summary = read_json(run_dir / "summary.json")
    vocab = read_json(run_dir / "prep.json")["vocab_size"]
    assert summary["objective"]["metric"] == "val/perplexity"
    assert summary["test"]["perplexity"] < vocab / 3  # a uniform guess is `vocab`
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    val = [e.value for e in acc.Scalars("val/perplexity")]
    assert len(val) == 2 and val[1] < val[0]
    for tag in ("samples/greedy/text_summary", "samples/temperature/text_summary"):
        events = acc.Tensors(tag)
        assert [e.step for e in events] == [30, 60]
        shown = events[-1].tensor_proto.string_val[0].decode()
        assert "->" in shown and len(shown.splitlines()) == 5  # a title and 4 samples
    new = tmp_path / "new.csv"
    pl.DataFrame({"sentence": ["The return statement", "A class definition is"]}).write_csv(new)
    df = predict.predict(load_run(str(run_dir)), str(new))
    assert df.columns == ["sentence", "perplexity", "generated"]
    assert df["perplexity"].is_finite().all() and df["generated"].str.len_chars().sum() > 0
