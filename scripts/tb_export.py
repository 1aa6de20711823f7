"""Every scalar of every run under a dir in one table (run, tag, step, value, wall_time).

    uv run python scripts/tb_export.py runs/                      # -> runs/scalars.parquet
    uv run python scripts/tb_export.py multirun/2026-11-22/10-00-00 -o sweep.csv

The output format follows the suffix (.parquet or .csv). Read it back with
`polars.read_parquet(path)`, e.g. to pivot tags into columns or compare runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from dlexp.inspection.events import scalars_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("root", help="a run dir, a sweep dir, or any dir holding TensorBoard event files")
    ap.add_argument("-o", "--out", help="output file, .parquet or .csv (default: <root>/scalars.parquet)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"tb_export: {args.root!r} is not a directory", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.root, "scalars.parquet")
    if not out.endswith((".parquet", ".csv")):
        print(f"tb_export: --out {out!r} must end in .parquet or .csv", file=sys.stderr)
        return 2
    table = scalars_table(args.root)
    if out.endswith(".csv"):
        table.write_csv(out)
    else:
        table.write_parquet(out)
    print(f"{table.height} scalars, {table['run'].n_unique()} runs, {table['tag'].n_unique()} tags -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
