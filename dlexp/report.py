"""`python -m dlexp.report <run dir or sweep dir>`: PNG plots and a markdown summary.

A run dir (it holds summary.json) gets its learning curves and, for classification,
its test confusion matrix. Any other dir is read as a sweep: every run dir under it is
a job, compared in a leaderboard, by the objective against each swept hyperparameter,
and by the objective's curve per job. Files go to <dir>/report/ (or --out); the
markdown summary is report.md there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

import polars as pl

CURVE_SCHEMA = {"tag": pl.String, "step": pl.Int64, "value": pl.Float64}


@dataclass
class RunRecord:
    """What the report needs of one run: its summary, overrides and scalar curves."""

    path: str
    summary: dict
    overrides: dict[str, object] = field(default_factory=dict)
    curves: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CURVE_SCHEMA))

    @property
    def objective(self) -> float | None:
        v = (self.summary.get("objective") or {}).get("value")
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def find_runs(root: str) -> list[str]:
    """Run dirs (holding summary.json) at or under `root`, in natural job order."""
    found = [d for d, _, files in os.walk(root) if "summary.json" in files]
    return sorted(found, key=lambda d: [int(p) if p.isdigit() else p for p in os.path.relpath(d, root).split(os.sep)])


def parse_value(text: str) -> object:
    """'3e-3' -> 0.003, '64' -> 64, 'mlp' -> 'mlp': sweeps plot numbers on a number axis."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_overrides(run_dir: str) -> dict[str, object]:
    path = os.path.join(run_dir, ".hydra", "overrides.yaml")
    if not os.path.exists(path):
        return {}
    from omegaconf import OmegaConf

    out = {}
    for o in OmegaConf.to_container(OmegaConf.load(path)) or []:
        key, _, value = str(o).lstrip("+~").partition("=")
        out[key] = parse_value(value)
    return out


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
    if os.path.isdir(os.path.join(run_dir, "tb")):
        from dlexp.inspection.events import scalars_table

        return scalars_table(os.path.join(run_dir, "tb")).select(CURVE_SCHEMA)
    return pl.DataFrame(schema=CURVE_SCHEMA)


def load_run(run_dir: str) -> RunRecord:
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    return RunRecord(run_dir, summary, read_overrides(run_dir), read_curves(run_dir))


def curve_metrics(curves: pl.DataFrame, limit: int = 3) -> list[str]:
    """The metrics with a val curve, loss first: the panels of the learning-curve figure."""
    names = sorted({t.split("/", 1)[1] for t in curves["tag"].to_list() if t.startswith("val/")})
    names.sort(key=lambda m: (m != "loss", m not in ("accuracy", "f1", "rmse", "r2"), m))
    return names[:limit]


def md_table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows])


# ---------------------------------------------------------------------------- one run


def run_report(run: RunRecord, out: str) -> str:
    from dlexp.inspection import plots

    s = run.summary
    lines = [f"# Run report: `{run.path}`", ""]
    lines.append(f"status **{s.get('status')}**, {s.get('steps', '?')} steps, wall time {s.get('wall_time_s', '?')} s")
    obj = s.get("objective") or {}
    lines += [f"objective {obj.get('metric')} ({obj.get('mode')}) = {obj.get('value')} "
              f"at step {(s.get('best') or {}).get('step')}", ""]
    if s.get("error"):
        lines += [f"error: `{s['error']}`", ""]
    splits = {"train (last)": (s.get("final") or {}).get("train") or {}, "val (best)": (s.get("best") or {}).get("val") or {},
              "test": s.get("test") or {}}
    cols = list(dict.fromkeys(k for m in splits.values() for k in m))
    if cols:
        lines += [md_table(["split", *cols], [[name, *(m.get(c) for c in cols)] for name, m in splits.items()]), ""]
    metrics = curve_metrics(run.curves)
    if metrics:
        plots.learning_curves(run.curves, metrics, os.path.join(out, "curves.png"), title=run.path,
                              best_step=(s.get("best") or {}).get("step"), test=s.get("test"))
        lines += ["## Learning curves", "", "![learning curves](curves.png)", ""]
    cm = s.get("confusion")
    if cm:
        plots.confusion(cm["matrix"], cm["classes"], os.path.join(out, "confusion.png"),
                        title=f"{cm.get('split', 'test')} confusion matrix (accuracy "
                              f"{(s.get('test') or {}).get('accuracy', float('nan')):.3f})")
        lines += ["## Confusion matrix (test, best state)", "", "![confusion matrix](confusion.png)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- a sweep


def swept_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys whose value differs between jobs."""
    keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    return [k for k in keys if len({repr(r.overrides.get(k)) for r in runs}) > 1]


def sweep_report(root: str, runs: list[RunRecord], out: str) -> str:
    from dlexp.inspection import plots

    obj = next((r.summary.get("objective") for r in runs if r.summary.get("objective")), None) or {}
    metric, mode = obj.get("metric", "val/loss"), obj.get("mode", "min")
    keys = swept_keys(runs)
    scored = [i for i, r in enumerate(runs) if r.objective is not None]
    best = (min if mode == "min" else max)(scored, key=lambda i: runs[i].objective) if scored else None
    order = sorted(range(len(runs)), key=lambda i: (runs[i].objective is None,
                                                   (runs[i].objective or 0) * (1 if mode == "min" else -1)))
    test_cols = list(dict.fromkeys(k for r in runs for k in (r.summary.get("test") or {})))[:5]
    rows = [[os.path.relpath(runs[i].path, root), *(runs[i].overrides.get(k) for k in keys), runs[i].objective,
             *((runs[i].summary.get("test") or {}).get(c) for c in test_cols), runs[i].summary.get("status"),
             runs[i].summary.get("wall_time_s")] for i in order]
    failed = sum(r.summary.get("status") == "failed" for r in runs)
    lines = [f"# Sweep report: `{root}`", "",
             f"{len(runs)} jobs ({failed} failed); objective {metric} ({mode}); swept: {', '.join(keys) or 'nothing'}", ""]
    if best is not None:
        b = runs[best]
        lines += [f"best: job `{os.path.relpath(b.path, root)}` with {metric} = {b.objective:.6g}: "
                  f"`{' '.join(f'{k}={v}' for k, v in b.overrides.items())}`", ""]
    lines += [md_table(["job", *keys, metric, *(f"test/{c}" for c in test_cols), "status", "wall s"], rows), ""]
    if scored:
        lines += ["## Objective against each swept hyperparameter", ""]
        for k in keys:
            idx = [i for i in scored if k in runs[i].overrides]
            if not idx:
                continue
            name = f"{metric.replace('/', '_')}_vs_{safe_name(k)}.png"
            others = [o for o in keys if o != k]
            plots.metric_vs_hparam([runs[i].overrides[k] for i in idx], [runs[i].objective for i in idx],
                                   os.path.join(out, name), hparam=k, metric=metric,
                                   best=idx.index(best) if best in idx else None,
                                   groups=[" ".join(f"{o}={runs[i].overrides.get(o)}" for o in others) for i in idx])
            lines += [f"![{metric} vs {k}]({name})", ""]
    labels = {" ".join(f"{k}={r.overrides.get(k)}" for k in keys) or os.path.relpath(r.path, root): r.curves
              for r in runs}
    if any(t.height for t in labels.values()):
        plots.curves_per_job(labels, metric, os.path.join(out, "curves.png"))
        lines += ["## The objective during each job", "", "![curves per job](curves.png)", ""]
    return "\n".join(lines)


def safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


# ---------------------------------------------------------------------------- entry point


def write_report(root: str, out: str | None = None) -> str:
    """Writes the PNGs and report.md for a run or sweep dir; returns the markdown's path."""
    root = os.path.normpath(root)
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"{root!r} holds no run (no summary.json at or under it)")
    out = out or os.path.join(root, "report")
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(root, "summary.json")):
        text = run_report(load_run(root), out)
    else:
        text = sweep_report(root, [load_run(d) for d in runs], out)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dlexp.report", description=__doc__.splitlines()[0])
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
