"""Fuzzing the data path: any frame written in any format dlexp reads (Parquet, CSV, Arrow IPC,
NDJSON), whole or damaged (emptied, header only, garbage bytes, truncated, a column of mixed
numbers and text), either loads into finite float32 arrays or raises a DlexpError (one clear
message), never another exception."""

import itertools
import math

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlexp.data.table import table
from dlexp.errors import DlexpError

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
COLUMN_KINDS = {
    "float": (FLOATS, pl.Float64),
    "int": (st.integers(-(2**40), 2**40), pl.Int64),
    "small_int": (st.integers(-3, 3), pl.Int8),
    "uint": (st.integers(0, 255), pl.UInt8),
    "bool": (st.booleans(), pl.Boolean),
    "str": (st.text(alphabet='ab,"\n é', max_size=4), pl.Utf8),
    "null": (st.none(), pl.Null),
}
FORMATS = ["parquet", "csv", "ipc", "ndjson"]
counter = itertools.count()


def write(df: pl.DataFrame, path, fmt: str) -> None:
    {"parquet": df.write_parquet, "csv": df.write_csv, "ipc": df.write_ipc, "ndjson": df.write_ndjson}[fmt](path)


def check_loads_or_raises_clearly(path, tmp_path, task="auto", **options) -> None:
    """table() on `path`: finite float32 arrays, or one DlexpError message (never a traceback)."""
    try:
        data = table(path=str(path), label="label", task=task, seed=0, cache_dir=str(tmp_path / "cache"), **options)
    except DlexpError as e:
        assert str(e) and "Traceback" not in str(e) and "\n" not in str(e), str(e)
        return
    for split in ("train", "val", "test"):
        x = data.x[split]
        assert x.dtype == np.float32 and np.isfinite(x).all(), split
        assert len(data.y[split]) == len(x)
    assert data.task in ("classification", "regression")
    if data.task == "regression":
        assert all(math.isfinite(v) for v in data.target_scale)


@st.composite
def frames(draw):
    rows = draw(st.integers(0, 25))
    # mostly numeric features, so that most frames get past the column checks into prep
    kinds = draw(
        st.lists(
            st.sampled_from(["float", "float", "int", "small_int", "uint", "bool", "str", "null"]),
            min_size=1,
            max_size=4,
        )
    )
    label_kind = draw(st.sampled_from(["small_int", "str", "float", "bool", "null"]))
    columns = {}
    for i, kind in enumerate([label_kind, *kinds]):
        values, dtype = COLUMN_KINDS[kind]
        nullable = draw(st.sampled_from([True, False, False]))
        cells = st.one_of(st.none(), values) if nullable and kind != "null" else values
        name = "label" if i == 0 else f"c{i}_{kind}"
        columns[name] = pl.Series(name, draw(st.lists(cells, min_size=rows, max_size=rows)), dtype=dtype)
    return pl.DataFrame(columns)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    df=frames(),
    fmt=st.sampled_from(FORMATS),
    task=st.sampled_from(["auto", "regression"]),
    options=st.fixed_dictionaries(
        {},
        optional={
            "missing": st.sampled_from(["error", "drop", "mean", "median", "mode", 0]),
            "scale": st.sampled_from(["standard", "minmax", "none"]),
            "split": st.sampled_from(["random", "stratified"]),
            "outliers": st.sampled_from(["zscore", "iqr"]),
            "dedupe": st.booleans(),
        },
    ),
)
def test_table_loads_or_raises_a_clear_error(tmp_path, df, fmt, task, options):
    path = tmp_path / f"f{next(counter)}.{fmt}"
    try:
        write(df, path, fmt)
    except Exception:  # a frame polars itself cannot write (e.g. a Null column to CSV) is not our input
        return
    check_loads_or_raises_clearly(path, tmp_path, task, **options)


DAMAGE = ["empty", "header_only", "garbage", "truncated", "garbage_tail", "mixed_column"]


def damaged(df: pl.DataFrame, path, fmt: str, how: str, data) -> None:
    """Writes `df` to `path` and damages it as `how` says (data: hypothesis draws)."""
    if how == "empty":
        path.write_bytes(b"")
    elif how == "header_only":
        write(df.head(0), path, fmt)
    elif how == "garbage":
        path.write_bytes(data.draw(st.binary(min_size=1, max_size=300), label="garbage"))
    elif how in ("truncated", "garbage_tail"):
        write(df, path, fmt)
        raw = path.read_bytes()
        cut = data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut")
        tail = data.draw(st.binary(min_size=1, max_size=50), label="tail") if how == "garbage_tail" else b""
        path.write_bytes(raw[:cut] + tail)
    else:  # numbers and text in one column: text in a typed format, mixed in the text formats
        values = data.draw(
            st.lists(
                st.one_of(st.integers(-5, 5).map(str), st.sampled_from(["x", "?", "1,5", ""])),
                min_size=df.height,
                max_size=df.height,
            ),
            label="mixed",
        )
        write(df.with_columns(pl.Series("c_mixed", values, dtype=pl.Utf8)), path, fmt)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(df=frames(), fmt=st.sampled_from(FORMATS), how=st.sampled_from(DAMAGE), data=st.data())
def test_a_damaged_file_loads_or_raises_a_clear_error(tmp_path, df, fmt, how, data):
    path = tmp_path / f"d{next(counter)}.{fmt}"
    try:
        damaged(df, path, fmt, how, data)
    except Exception:  # a frame polars itself cannot write
        return
    check_loads_or_raises_clearly(path, tmp_path)
