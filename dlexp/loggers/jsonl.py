"""metrics.jsonl: one JSON line per logged step, {"step": ..., "train/loss": ..., ...}."""

from __future__ import annotations

import json
import math
from typing import Any

from dlexp.loggers.base import Writer


class JsonlWriter(Writer):
    def __init__(self, path: str, tags: dict[str, Any] | None = None):
        self.f = open(path, "a", buffering=1)
        self.tags = tags or {}  # a copy's rows say which copy they are: {"seed": 3} or {"copy": label}

    def scalars(self, step: int, values: dict[str, float]) -> None:
        row: dict[str, Any] = {"step": int(step), **self.tags}
        row.update({k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})
        self.f.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        self.f.flush()

    def close(self, status: str = "completed") -> None:
        self.f.close()
