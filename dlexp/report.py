"""`python -m dlexp.report <run dir or sweep dir>`: PNG plots and a markdown summary.

A run dir (it holds summary.json) gets its learning curves and, for classification,
its test confusion matrix. Any other dir is read as a sweep with `dlexp.sweep` (its
jobs, their overrides and the leaderboard), compared by the objective against each
swept hyperparameter and by the objective's curve per job. Files go to <dir>/report/
(or --out); the markdown summary is report.md there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import polars as pl

CURVE_SCHEMA = {"tag": pl.String, "step": pl.Int64, "value": pl.Float64}


def read_curves(run_dir: str) -> pl.DataFrame:
    """(tag, step, value) from metrics.jsonl, or from the TensorBoard events without it."""
    jsonl = os.path.join(run_dir, "metrics.jsonl")
    rows: list[tuple[str, int, float]] = []
    if os.path.exists(jsonl):
        with open(jsonl) as f:
            for line in f:
                rec = json.loads(line)
                step = rec.pop("step")
                rows += [(k, step, float(v)) for k, v in rec.items() if isinstance(v, (int, float))]
        return pl.DataFrame(rows, schema=CURVE_SCHEMA, orient="row")
    from dlexp.loggers.names import event_dir

    tb = event_dir(run_dir)
    if os.path.isdir(tb):
        from dlexp.inspection.events import run_scalars

        cols = run_scalars(tb)
        return pl.DataFrame({k: cols[k] for k in CURVE_SCHEMA}, schema=CURVE_SCHEMA)
    return pl.DataFrame(schema=CURVE_SCHEMA)


def curve_metrics(curves: pl.DataFrame, limit: int = 3) -> list[str]:
    """The metrics with a val curve, loss first: the panels of the learning-curve figure."""
    names = sorted({t.split("/", 1)[1] for t in curves["tag"].to_list() if t.startswith("val/")})
    names.sort(key=lambda m: (m != "loss", m not in ("accuracy", "f1", "rmse", "r2"), m))
    return names[:limit]


def md_table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows])


def rows_table(rows: dict[str, dict], first: str) -> str:
    """{row name: {column: value}} as a markdown table (columns in first-seen order)."""
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
    return md_table([first, *cols], [[name, *(r.get(c) for c in cols)] for name, r in rows.items()])


# ---------------------------------------------------------------------------- one run


def run_report(run_dir: str, out: str) -> str:
    from dlexp.figures.classification import confusion
    from dlexp.figures.style import save
    from dlexp.figures.training import learning_curves

    with open(os.path.join(run_dir, "summary.json")) as f:
        s = json.load(f)
    curves = read_curves(run_dir)
    lines = [f"# Run report: `{run_dir}`", ""]
    lines.append(f"status **{s.get('status')}**, {s.get('steps', '?')} steps, wall time {s.get('wall_time_s', '?')} s")
    obj = s.get("objective") or {}
    lines += [
        f"objective {obj.get('metric')} ({obj.get('mode')}) = {obj.get('value')} "
        f"at step {(s.get('best') or {}).get('step')}",
        "",
    ]
    if s.get("error"):
        lines += [f"error: `{s['error']}`", ""]
    splits = {
        "train (last)": (s.get("final") or {}).get("train") or {},
        "val (best)": (s.get("best") or {}).get("val") or {},
        "test": s.get("test") or {},
    }
    cols = list(dict.fromkeys(k for m in splits.values() for k in m))
    if s.get("cv"):  # the folds, then their mean ± std: the cross-validated result
        from dlexp.crossval import fold_rows, mean_std_rows

        lines += [
            f"## Cross-validation: {s['cv']['folds']} folds",
            "",
            rows_table(fold_rows(s), "fold"),
            "",
            f"mean ± std over the folds; objective {obj.get('metric')} = {obj.get('value'):.6g} ± {obj.get('std'):.6g}",
            "",
            rows_table(mean_std_rows(s), "split"),
            "",
        ]
    elif cols:
        lines += [md_table(["split", *cols], [[name, *(m.get(c) for c in cols)] for name, m in splits.items()]), ""]
    metrics = curve_metrics(curves)
    if metrics:
        best_step = (s.get("best") or {}).get("step")
        fig = learning_curves(curves, metrics, title=run_dir, best_step=best_step, test=s.get("test"))
        save(fig, os.path.join(out, "curves.png"))
        lines += ["## Learning curves", "", "![learning curves](curves.png)", ""]
    cm = s.get("confusion")
    if cm:
        save(confusion(cm["matrix"], cm["classes"], split=cm.get("split", "test")), os.path.join(out, "confusion.png"))
        lines += ["## Confusion matrix (test, best state)", "", "![confusion matrix](confusion.png)", ""]
    if {"d_loss", "kl"} & set(s.get("test") or {}):  # a GAN's or an autoencoder's: its samples
        from dlexp.inspection.generated import sample_grids

        for title, name in sample_grids(run_dir, out):
            lines += [f"## {title[0].upper()}{title[1:]}", "", f"![{title}]({name})", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- a sweep


def number_or_text(values: list) -> list:
    """Override values as numbers where they all are ('3e-3' -> 0.003), so they plot on a number axis."""
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return values


def sweep_report(root: str, out: str) -> str:
    from dlexp import sweep
    from dlexp.figures.style import save
    from dlexp.figures.sweeps import curves_per_job, metric_vs_hparam

    ranked = sweep.leaderboard(sweep.collect([root]))
    metric = next((m for m in ranked["objective_metric"].to_list() if m), "objective")
    mode = next((m for m in ranked["mode"].to_list() if m), "min")
    keys = [k for k in sweep.swept_keys(ranked) if k != "seed"]
    failed = ranked.filter(pl.col("status") != "completed").height
    swept = ", ".join(keys) or "nothing"
    lines = [
        f"# Sweep report: `{root}`",
        "",
        f"{ranked.height} jobs ({failed} failed); objective {metric} ({mode}); swept: {swept}",
        "",
    ]
    best = ranked.row(0, named=True)
    if best["status"] == "completed" and best["objective"] is not None:
        lines += [f"best: job `{best['job']}` with {metric} = {best['objective']:.6g}: `{best['overrides']}`", ""]
    shown = sweep.shown_columns(ranked)
    header = [metric if c == "objective" else c for c in shown]
    lines += [md_table(header, [list(r) for r in ranked.select(shown).iter_rows()]), ""]
    scored = ranked.filter(pl.col("objective").is_not_null() & pl.col("objective").is_finite())
    if scored.height:
        lines += ["## Objective against each swept hyperparameter", ""]
    for k in keys if scored.height else []:
        rows = scored.filter(pl.col(k).is_not_null())
        others = [o for o in keys if o != k]
        groups = [" ".join(f"{o}={r[o]}" for o in others) for r in rows.iter_rows(named=True)]
        name = f"{metric.replace('/', '_')}_vs_{safe_name(k)}.png"
        fig = metric_vs_hparam(
            number_or_text(rows[k].to_list()),
            rows["objective"].to_list(),
            hparam=k,
            metric=metric,
            best=0 if rows["job"][0] == best["job"] else None,
            groups=groups,
        )
        save(fig, os.path.join(out, name))
        lines += [f"![{metric} vs {k}]({name})", ""]
    curves = {
        " ".join(f"{k}={r[k]}" for k in keys) or r["job"]: read_curves(os.path.join(root, r["job"]))
        for r in ranked.unique("job", maintain_order=True).iter_rows(named=True)
    }
    if any(t.height for t in curves.values()):
        save(curves_per_job(curves, metric), os.path.join(out, "curves.png"))
        lines += ["## The objective during each job", "", "![curves per job](curves.png)", ""]
    return "\n".join(lines)


def safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


# ---------------------------------------------------------------------------- entry point


def write_report(root: str, out: str | None = None) -> str:
    """Writes the PNGs and report.md for a run or sweep dir; returns the markdown's path."""
    from dlexp.sweep import find_jobs

    root = os.path.normpath(root)
    is_run = os.path.exists(os.path.join(root, "summary.json"))
    if not is_run and not find_jobs(root):
        raise FileNotFoundError(f"{root!r} is neither a run dir (no summary.json) nor a sweep dir (no jobs under it)")
    out = out or os.path.join(root, "report")
    os.makedirs(out, exist_ok=True)
    text = run_report(root, out) if is_run else sweep_report(root, out)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dlexp.report", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("dir", help="a run dir (runs/<date>/<time>) or a sweep dir (multirun/<date>/<time>)")
    ap.add_argument("--out", help="where the PNGs and report.md go (default: <dir>/report)")
    args = ap.parse_args(argv)
    try:
        path = write_report(args.dir, args.out)
    except FileNotFoundError as e:
        print(f"dlexp error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
