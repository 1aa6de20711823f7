"""Sample-quality metrics from a judge's feature sums of real and generated examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlexp.quality.frechet import class_coverage, frechet_distance, gaussian

if TYPE_CHECKING:
    from dlexp.quality.judge import Judge

# What a generative task reports with a judge (val/fid can be the objective, mode min).
QUALITY_METRICS = ("fid", "confidence", "coverage", "real_fid", "real_confidence", "real_coverage")


def quality_metrics(judge: Judge, real: dict, fake: dict) -> dict[str, float]:
    """fid / confidence / coverage of the generated examples, and the same of the split's real
    ones: the scores a perfect generator would get."""
    out = {}
    for prefix, sums in (("", fake), ("real_", real)):
        n = max(float(sums["n"]), 1.0)
        out[f"{prefix}fid"] = frechet_distance(*gaussian(sums), *judge.reference)
        out[f"{prefix}confidence"] = float(sums["confidence"]) / n
        out[f"{prefix}coverage"] = class_coverage(sums["classes"])
    return out
