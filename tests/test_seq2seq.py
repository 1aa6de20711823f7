"""Sequence to sequence: the decoders, the encoder-decoder's masks, a dates run through the
real CLI with BLEU / chrF, and predict on a new CSV."""

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
from conftest import read_json
from flax import nnx
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlexp.data.dates import date_frame
from dlexp.data.text import BOS_ID, EOS_ID, PAD_ID
from dlexp.models import Seq2Seq
from dlexp.tasks.seq2seq import beam_search, greedy

VOCAB, LENGTH = 9, 7


TABLE = jax.random.normal(jax.random.key(0), (VOCAB, VOCAB))


def bigram_logits(ids, memory, keep, t):
    """next_logits of a fixed random bigram table, per row shifted by `memory` (rows differ)."""
    return (TABLE[ids[:, t - 1]] + memory[:, 0]).at[:, jnp.array([PAD_ID, BOS_ID])].set(-jnp.inf)


def eos_from_step_3(ids, memory, keep, t):
    """As `bigram_logits`, but [EOS] is never chosen before step 3 and always from it on."""
    return bigram_logits(ids, memory, keep, t).at[:, EOS_ID].set(jnp.where(t >= 3, 10.0, -jnp.inf))


def test_a_beam_of_one_is_greedy_and_decoding_stops_at_eos():
    keep = jnp.ones((5, 1), bool)
    decode_greedy = jax.jit(greedy, static_argnums=(0, 3))
    decode_beam = jax.jit(beam_search, static_argnums=(0, 3, 4))
    for seed in range(3):
        memory = jax.random.normal(jax.random.key(seed), (5, 1, VOCAB))
        np.testing.assert_array_equal(
            decode_greedy(bigram_logits, memory, keep, LENGTH), decode_beam(bigram_logits, memory, keep, LENGTH, 1)
        )
    for ids in (
        decode_greedy(eos_from_step_3, memory, keep, LENGTH),
        decode_beam(eos_from_step_3, memory, keep, LENGTH, 3),
    ):
        ids = np.asarray(ids)
        assert ids.shape == (5, LENGTH) and (ids[:, 0] == BOS_ID).all()
        assert (ids[:, 3] == EOS_ID).all() and (ids[:, 4:] == PAD_ID).all()  # padding after [EOS]
        assert not np.isin(ids[:, 1:3], [PAD_ID, BOS_ID, EOS_ID]).any()


def test_the_decoder_reads_earlier_targets_and_real_source_tokens_only():
    net = Seq2Seq(in_shape=(8,), num_outputs=20, vocab_size=20, dim=16, heads=2, dropout=0.0, rngs=nnx.Rngs(0))
    net.eval()
    source = jnp.array([[2, 5, 6, 7, 3, 0, 0, 0]], jnp.int32)
    target = jnp.array([[2, 8, 9, 10, 11, 3, 0, 0]], jnp.int32)
    forward = nnx.jit(lambda m, s, t: m((s, t)))
    before = forward(net, source, target)
    assert before.shape == (1, 8, 20)
    later = forward(net, source, target.at[0, 4:].set(jnp.array([12, 13, 3, 0])))
    np.testing.assert_allclose(later[0, :4], before[0, :4], atol=1e-5)  # causal
    net.encoder.embed.embedding[...] = net.encoder.embed.embedding[...].at[0].set(5.0)
    np.testing.assert_allclose(forward(net, source, target)[0, :6], before[0, :6], atol=1e-5)  # padding masked


def test_dates_train_with_bleu_and_predict_a_new_csv(tmp_path, cli):
    from dlexp import predict

    cli(
        "dataset=dates",
        "dataset.rows=400",
        "dataset.tokenizer.max_length=24",
        "model=seq2seq",
        "model.dim=32",
        "model.heads=2",
        "model.encoder_depth=1",
        "model.decoder_depth=1",
        "model.dropout=0.0",
        "callbacks.translations.beam_size=2",
        "trainer.steps=30",
        "trainer.eval_every=15",
        "trainer.log_every=15",
        "trainer.batch_size=32",
        "trainer.progress=false",
        "trainer.parallel=single",
        "trainer.checkpoint.async_save=false",
        "optimizer.lr=3e-3",
        "trainer.steps_per_call=1",  # one step per compiled call: the shortest compilation
        "hydra.run.dir=run",
        check=True,
    )
    run_dir = tmp_path / "run"
    assert (run_dir / "tokenizer.json").exists()
    assert read_json(run_dir / "prep.json")["target_text"] == "target"
    summary = read_json(run_dir / "summary.json")
    for key in ("bleu", "chrf", "exact_match", "beam_bleu", "beam_chrf", "token_accuracy"):
        assert 0.0 <= summary["test"][key] <= 100.0, key
    assert summary["test"]["token_accuracy"] > 0.2 and summary["test"]["chrf"] > 0.0
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("val/bleu")] == [15, 30] and acc.Scalars("test/chrf")
    shown = acc.Tensors("translations/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "reference: " in shown and "beam: " in shown and len(shown.splitlines()) == 5

    new = tmp_path / "new.csv"
    date_frame(3, seed=9).drop("target").with_row_index("id").write_csv(new)
    out = tmp_path / "p.parquet"
    assert predict.main([str(run_dir), f"path={new}", f"out={out}"]) == 0
    df = pl.read_parquet(out)
    assert df.columns == ["id", "source", "generated", "generated_beam"]
    assert df["generated"].str.len_chars().min() > 0


def test_a_missing_target_column_is_named(tmp_path, cli):
    path = tmp_path / "pairs.csv"
    date_frame(30, seed=0).write_csv(path)
    proc = cli(
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.label=null",
        "dataset.text=[source]",
        "dataset.target_text=iso",
        "model=seq2seq",
    )
    assert proc.returncode == 2
    assert "dataset.target_text='iso' is not a column of" in proc.stderr and "columns: source, target" in proc.stderr
