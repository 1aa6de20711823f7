"""What loading the data cost each process: rows of features read and memory, gathered
from every process into the run's summary (docs/multihost.md measures it)."""

from __future__ import annotations

import numpy as np

from dlexp.data.dataset import Dataset
from dlexp.data.shards import allgather_f64


def memory_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak so far (VmHWM), in MB; 0 where
    /proc is missing (not Linux)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
    except (OSError, StopIteration):
        return 0.0


def rows_read(data: Dataset) -> int:
    """Rows this process read features of: its shards' ranges, or every split's rows."""
    if data.shards is not None:
        return data.shards.rows_read()
    return sum(data.sizes().values())


def footprint(data: Dataset, rss_before_mb: float, processes: int) -> dict:
    """{"shards": S, "processes": [{rows_read, data_peak_mb, peak_rss_mb} per process]}.
    data_peak_mb: the peak resident memory while loading, above what the process held before
    it (the interpreter, JAX). A collective when several processes run."""
    peak = memory_mb("VmHWM")
    local = np.array([rows_read(data), peak - rss_before_mb, peak], np.float64)
    rows = allgather_f64(local) if processes > 1 else local[None]
    return {
        "shards": data.shards.spec.count if data.shards is not None else 1,
        "processes": [
            {"process": i, "rows_read": int(n), "data_peak_mb": round(float(d), 1), "peak_rss_mb": round(float(p), 1)}
            for i, (n, d, p) in enumerate(rows)
        ],
    }
