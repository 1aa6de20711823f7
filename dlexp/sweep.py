"""One results table for a sweep: `python -m dlexp.sweep <sweep dir> [<sweep dir> ...]`.

Reads every job under the given dirs (.hydra/overrides.yaml, .hydra/config.yaml,
summary.json) into one Polars DataFrame with a row per trained model (a vectorized
job gives one row per seed), prints a leaderboard sorted by the objective, writes
results.parquet and results.csv into the first dir, and prints the command line of
the best job.

  python -m dlexp.sweep multirun/2025-01-01/12-00-00
  python -m dlexp.sweep multirun/2025-01-01/12-00-00 --group-by model,optimizer.lr   # mean, std over the rest
  python -m dlexp.sweep multirun/2025-01-01/12-00-00 --across seed                   # by every swept key but seed
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import polars as pl
import yaml

SWEEP_ONLY = ("hparams_search=", "launcher=", "hydra.sweeper.", "hydra.launcher.", "hydra.sweep.")
KEY_METRICS = ("accuracy", "f1", "loss", "rmse", "mae", "r2")  # test metrics printed (all are in the files)


def find_jobs(root: str) -> list[str]:
    """Job dirs under `root` (any depth): those Hydra wrote a .hydra/ into."""
    found = glob.glob(os.path.join(root, "**", ".hydra", "overrides.yaml"), recursive=True)
    return sorted({os.path.dirname(os.path.dirname(p)) for p in found}, key=_natural)


def _natural(path: str) -> list:
    return [int(p) if p.isdigit() else p for p in path.replace(os.sep, "/").split("/")]


def _load_yaml(path: str) -> Any:
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError:
        return None


def read_job(job_dir: str, root: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, resolved config) of one job: a row per trained model."""
    overrides = _load_yaml(os.path.join(job_dir, ".hydra", "overrides.yaml")) or []
    config: dict[str, Any] = _load_yaml(os.path.join(job_dir, ".hydra", "config.yaml")) or {}
    summary: dict[str, Any]
    try:
        with open(os.path.join(job_dir, "summary.json")) as f:
            summary = json.load(f)
    except (OSError, json.JSONDecodeError):
        summary = {"status": "missing", "error": "no summary.json: the job was killed or is still running"}
    base = {
        "job": os.path.relpath(job_dir, root),
        "status": summary.get("status", "unknown"),
        "overrides": shlex.join(overrides),
        **{k: v for k, v in (split_override(o) for o in overrides)},
    }
    common = {"wall_time_s": summary.get("wall_time_s"), "error": summary.get("error")}
    copies = summary.get("copies") or [summary]
    rows = []
    for c in copies:
        obj = c.get("objective") or summary.get("objective") or {}
        rows.append(
            {
                **base,
                "seed": c.get("seed", config.get("seed")),
                "objective": _number(obj.get("value")),
                "objective_metric": obj.get("metric", (config.get("objective") or {}).get("metric")),
                "mode": obj.get("mode", (config.get("objective") or {}).get("mode")),
                "best_step": (c.get("best") or {}).get("step"),
                **{f"test/{k}": _number(v) for k, v in (c.get("test") or {}).items()},
                **{f"val_best/{k}": _number(v) for k, v in ((c.get("best") or {}).get("val") or {}).items()},
                **common,
            }
        )
    return rows, config


def split_override(o: str) -> tuple[str, str]:
    key, _, value = o.partition("=")
    return key.lstrip("+~"), value


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def collect(roots: list[str], extra_keys: Sequence[str] = ()) -> pl.DataFrame:
    """Every job under `roots` as rows; `extra_keys` adds config values (dotted keys) as columns."""
    rows: list[dict[str, Any]] = []
    for root in roots:
        for job in find_jobs(root):
            job_rows, config = read_job(job, root if len(roots) == 1 else os.path.dirname(root.rstrip("/")))
            for key in extra_keys:
                value = select(config, key)
                for r in job_rows:
                    r.setdefault(key, None if value is None else str(value))
            rows += job_rows
    if not rows:
        raise SystemExit(f"dlexp.sweep: no jobs (dirs with .hydra/overrides.yaml) under {', '.join(roots)}")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], infer_schema_length=None)


def select(config: dict, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def swept_keys(df: pl.DataFrame) -> list[str]:
    """The override keys whose value differs between jobs (all override keys if none differ)."""
    fixed = {
        "job",
        "status",
        "overrides",
        "seed",
        "objective",
        "objective_metric",
        "mode",
        "best_step",
        "wall_time_s",
        "error",
    }
    keys = [c for c in df.columns if c not in fixed and "/" not in c]
    varying = [k for k in keys if df.get_column(k).cast(pl.String).n_unique() > 1]
    return varying or keys


def leaderboard(df: pl.DataFrame) -> pl.DataFrame:
    """Completed jobs first, best objective first (by the sweep's objective mode)."""
    mode = next((m for m in df.get_column("mode").to_list() if m), "min") if "mode" in df.columns else "min"
    ok = (pl.col("status") == "completed") & pl.col("objective").is_not_null() & pl.col("objective").is_finite()
    return (
        df.with_columns(_failed=~ok.fill_null(False))
        .sort(["_failed", "objective"], descending=[False, mode == "max"], nulls_last=True)
        .drop("_failed")
    )


def key_metrics(df: pl.DataFrame) -> list[str]:
    return [f"test/{m}" for m in KEY_METRICS if f"test/{m}" in df.columns][:4]


def group(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Mean and std of the objective and the key metrics per value of `keys` (e.g. across seeds)."""
    metrics = ["objective", *key_metrics(df), "wall_time_s"]
    done = df.filter(pl.col("status") == "completed")
    aggs = [pl.len().alias("n")]
    for m in metrics:
        aggs += [pl.col(m).mean().alias(f"{m} mean"), pl.col(m).std().alias(f"{m} std")]
    out = done.group_by(keys, maintain_order=True).agg(aggs)
    failed = df.group_by(keys, maintain_order=True).agg((pl.col("status") != "completed").sum().alias("failed"))
    out = failed.join(out, on=keys, how="left", nulls_equal=True).with_columns(pl.col("n").fill_null(0))
    mode = next((m for m in df.get_column("mode").to_list() if m), "min")
    return out.sort("objective mean", descending=mode == "max", nulls_last=True)


def best_command(ranked: pl.DataFrame) -> str | None:
    row = ranked.row(0, named=True)
    if row["status"] != "completed" or row["objective"] is None or not math.isfinite(row["objective"]):
        return None
    # The trial's own values, not the search: drop what chose the sweeper and the launcher.
    args = [a for a in shlex.split(row["overrides"]) if not a.startswith(SWEEP_ONLY)]
    return shlex.join(["python", "-m", "dlexp.train", *args])


def shown_columns(df: pl.DataFrame) -> list[str]:
    swept = [k for k in swept_keys(df) if k != "seed"]
    tests = key_metrics(df)
    seed = ["seed"] if "seed" in df.columns and df.get_column("seed").n_unique() > 1 else []
    return ["job", *swept, *seed, "objective", *tests, "status", "wall_time_s"]


def report(
    roots: list[str], group_by: Sequence[str] = (), across: str | None = None, out_dir: str | None = None, file=None
) -> pl.DataFrame:
    """Collects, writes results.parquet / results.csv, prints the leaderboard and the best job."""
    file = file or sys.stdout
    df = collect(roots, extra_keys=list(group_by))
    ranked = leaderboard(df)
    out_dir = out_dir or roots[0]
    ranked.write_parquet(os.path.join(out_dir, "results.parquet"))
    ranked.write_csv(os.path.join(out_dir, "results.csv"))
    metric = next((m for m in df.get_column("objective_metric").to_list() if m), "objective")
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
        tbl_width_chars=250,
        fmt_str_lengths=60,
        float_precision=4,
    ):
        print(
            f"{len(ranked)} runs, objective {metric} ({ranked.get_column('mode')[0] or 'min'}), best first:", file=file
        )
        print(ranked.select(shown_columns(ranked)), file=file)
        keys = list(group_by) or ([k for k in swept_keys(df) if k != across] if across else [])
        if keys:
            print(f"mean and std over runs with the same {', '.join(keys)}:", file=file)
            print(group(df, keys), file=file)
    failed = ranked.filter(~pl.col("status").is_in(["completed", "pruned"]))  # a pruned trial ended as asked
    for row in failed.iter_rows(named=True):
        print(f"job {row['job']} {row['status']}: {row['error']}", file=file)
    cmd = best_command(ranked)
    print(f"best ({metric} = {ranked.get_column('objective')[0]}): {cmd}" if cmd else "no job completed", file=file)
    print(f"table: {os.path.join(out_dir, 'results.parquet')} and results.csv", file=file)
    return ranked


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlexp.sweep", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("dirs", nargs="+", help="sweep dirs (several: e.g. the runs of one resumed Optuna study)")
    p.add_argument("--group-by", default="", help="comma-separated keys (overrides or config keys) to aggregate by")
    p.add_argument("--across", default=None, help="aggregate over this key: group by every other swept key (e.g. seed)")
    p.add_argument("--out", default=None, help="where results.parquet / results.csv go (default: the first dir)")
    a = p.parse_args(argv)
    keys = [k for k in a.group_by.split(",") if k]
    report(a.dirs, group_by=keys, across=a.across, out_dir=a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
