"""Every scalar of every run under a dir, as one Polars table.

Reads the event files with TensorBoard's own `EventAccumulator`, so the table holds
exactly what the dashboard shows. A run is a dir holding event files, named as
TensorBoard names it: its path relative to the root ("." for the root itself), e.g.
"tb" for one run dir, "3/tb" for job 3 of a sweep.
"""

from __future__ import annotations

import os

import polars as pl

SCHEMA = {"run": pl.String, "tag": pl.String, "step": pl.Int64, "value": pl.Float64, "wall_time": pl.Float64}


def event_dirs(root: str) -> list[str]:
    """The dirs under `root` (itself included) that hold TensorBoard event files, sorted."""
    found = []
    for d, _, files in os.walk(root):
        if any(".tfevents." in f for f in files):
            found.append(d)
    return sorted(found)


def run_scalars(event_dir: str) -> dict[str, list]:
    """Columns tag, step, value, wall_time of one run's scalars (all of them, no sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    guidance = {"scalars": 0, "histograms": 1, "images": 1, "tensors": 1, "audio": 1, "compressedHistograms": 1}
    acc = EventAccumulator(event_dir, size_guidance=guidance)
    acc.Reload()
    cols: dict[str, list] = {"tag": [], "step": [], "value": [], "wall_time": []}
    for tag in acc.Tags()["scalars"]:
        for e in acc.Scalars(tag):
            cols["tag"].append(tag)
            cols["step"].append(e.step)
            cols["value"].append(e.value)
            cols["wall_time"].append(e.wall_time)
    return cols


def scalars_table(root: str) -> pl.DataFrame:
    """One row per logged scalar: run, tag, step, value, wall_time (sorted by run, tag, step)."""
    frames = [pl.DataFrame(schema=SCHEMA)]  # an empty dir gives an empty table, not an error
    for d in event_dirs(root):
        cols = run_scalars(d)
        run = os.path.relpath(d, root)
        frames.append(pl.DataFrame({"run": [run] * len(cols["tag"]), **cols}, schema=SCHEMA))
    return pl.concat(frames).sort("run", "tag", "step")
