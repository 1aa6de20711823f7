"""Fuzzing the data path: any frame written to Parquet or CSV either loads into finite float32
arrays or raises a DlexpError (one clear message), never another exception."""

import itertools
import math

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings, strategies as st

from dlexp.data.table import table
from dlexp.errors import DlexpError

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
COLUMN_KINDS = {
    "float": (FLOATS, pl.Float64),
    "int": (st.integers(-(2**40), 2**40), pl.Int64),
    "small_int": (st.integers(-3, 3), pl.Int8),
    "uint": (st.integers(0, 255), pl.UInt8),
    "bool": (st.booleans(), pl.Boolean),
    "str": (st.text(alphabet="ab,\"\n é", max_size=4), pl.Utf8),
    "null": (st.none(), pl.Null),
}
counter = itertools.count()


@st.composite
def frames(draw):
    rows = draw(st.integers(0, 25))
    # mostly numeric features, so that most frames get past the column checks into prep
    kinds = draw(st.lists(st.sampled_from(["float", "float", "int", "small_int", "uint", "bool", "str", "null"]),
                          min_size=1, max_size=4))
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
@given(df=frames(), fmt=st.sampled_from(["parquet", "csv"]), task=st.sampled_from(["auto", "regression"]),
       options=st.fixed_dictionaries({}, optional={
           "missing": st.sampled_from(["error", "drop", "mean", "median", "mode", 0]),
           "scale": st.sampled_from(["standard", "minmax", "none"]),
           "split": st.sampled_from(["random", "stratified"]),
           "outliers": st.sampled_from(["zscore", "iqr"]),
           "dedupe": st.booleans(),
       }))
def test_table_loads_or_raises_a_clear_error(tmp_path, df, fmt, task, options):
    path = tmp_path / f"f{next(counter)}.{fmt}"
    try:
        df.write_parquet(path) if fmt == "parquet" else df.write_csv(path)
    except Exception:  # a frame polars itself cannot write (e.g. a Null column to CSV) is not our input
        return
    try:
        data = table(path=str(path), label="label", task=task, seed=0, cache_dir=str(tmp_path / "cache"), **options)
    except DlexpError as e:
        assert str(e) and "Traceback" not in str(e)
        return
    for split in ("train", "val", "test"):
        x = data.x[split]
        assert x.dtype == np.float32 and np.isfinite(x).all(), split
        assert len(data.y[split]) == len(x)
    assert data.task in ("classification", "regression")
    if data.task == "regression":
        assert all(math.isfinite(v) for v in data.target_scale)
