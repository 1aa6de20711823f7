"""Bad data files in every format dlexp reads, and a batch larger than the data: one clear
message each, naming the file (or key) and what would be valid."""

import logging

import numpy as np
import polars as pl
import pytest

from dlexp.data.table import table
from dlexp.errors import DataError

FRAME = pl.DataFrame({"f1": np.arange(30.0), "f2": np.arange(30) % 7, "label": np.arange(30) % 3})
VALID = {
    "csv": "expected a CSV file: UTF-8 text",
    "ndjson": "expected an NDJSON file: UTF-8 text",
    "parquet": "expected a complete Parquet file",
    "ipc": "expected a complete Arrow IPC file",
}


def load(path, **kw):
    return table(path=str(path), label="label", seed=0, **kw)


def written(tmp_path, fmt: str, frame: pl.DataFrame = FRAME):
    path = tmp_path / f"d.{fmt}"
    {"csv": frame.write_csv, "parquet": frame.write_parquet, "ipc": frame.write_ipc, "ndjson": frame.write_ndjson}[fmt](
        path
    )
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ipc", "ndjson"])
def test_an_empty_file_is_named_with_what_it_should_hold(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=rf"d\.{fmt} is empty \(0 bytes\); {VALID[fmt]}"):
        load(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ipc"])
def test_a_file_with_columns_but_no_rows_says_so(tmp_path, fmt):
    with pytest.raises(DataError, match=rf"d\.{fmt} has no rows \(columns: f1, f2, label\)"):
        load(written(tmp_path, fmt, FRAME.head(0)))
    if fmt == "csv":  # it used to read as text columns: "declare them categorical"
        (tmp_path / "d.csv").write_text("f1,f2,label\n")
        with pytest.raises(DataError, match="has no rows"):
            load(tmp_path / "d.csv")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ipc", "ndjson"])
def test_garbage_bytes_are_named_with_the_file(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    path.write_bytes(bytes(range(256)) * 8)
    text = {"csv": "CSV", "ndjson": "NDJSON"}.get(fmt)
    what = (
        rf"d\.{fmt} is not {text} text: byte 0 is binary"
        if text
        else rf"cannot read .*d\.{fmt} as (Parquet|Arrow IPC) \(.*\): it is damaged, truncated or another format"
    )
    with pytest.raises(DataError, match=what + f".*{VALID[fmt]}"):
        load(path)


@pytest.mark.parametrize("fmt", ["parquet", "ipc", "ndjson"])
def test_a_truncated_file_is_named(tmp_path, fmt):
    path = written(tmp_path, fmt)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(DataError, match=rf"cannot read .*d\.{fmt} as .*damaged, truncated or another format"):
        load(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ipc", "ndjson"])
def test_a_column_mixing_numbers_and_text_is_named(tmp_path, fmt):
    mixed = FRAME.with_columns(pl.Series("f1", [str(i) for i in range(29)] + ["n/a"]))
    with pytest.raises(
        DataError,
        match=r"feature columns of .* mix numbers and text: 'f1' \(1 of 30 values are "
        r"text, e\.g\. 'n/a'\); fix or drop those rows",
    ):
        load(written(tmp_path, fmt, mixed))


def test_text_past_the_rows_a_csv_type_is_read_from_is_named(tmp_path):
    from dlexp.data.sources import INFER_ROWS

    n = INFER_ROWS + 10
    lines = [f"{i},{i % 3}" for i in range(n)]
    lines[-1] = "oops,1"
    (tmp_path / "d.csv").write_text("f1,label\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d\.csv: column 'f1' holds 'oops' where the rows before it hold i64 values"):
        load(tmp_path / "d.csv")


def test_a_label_with_one_class_is_an_error(tmp_path):
    one = written(tmp_path, "csv", FRAME.with_columns(label=pl.lit("a")))
    with pytest.raises(
        DataError,
        match=r"label column 'label' of .*d\.csv holds one class \('a'\) in the file; "
        "classification needs at least two classes in the train rows",
    ):
        load(one)
    rare = FRAME.with_columns(label=pl.Series(["a"] * 28 + ["b", "b"]), split=pl.Series(["train"] * 28 + ["test"] * 2))
    with pytest.raises(DataError, match=r"holds one class \('a'\) in the train split"):
        load(written(tmp_path, "parquet", rare), split="column", split_column="split")


def test_a_batch_larger_than_the_train_split_is_one_warning(caplog):
    from dlexp.config import TrainerConfig
    from dlexp.loop.plan import plan_steps

    with caplog.at_level(logging.INFO, logger="dlexp"):
        plan = plan_steps(TrainerConfig(batch_size=512, steps=10), n_train=100)
    assert plan.batch_size == 100
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "trainer.batch_size=512 is larger than the train split (100 rows): using batches of 100"
    )
