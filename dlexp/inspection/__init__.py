"""Inspection: what a run shows about itself beyond its metrics.

The maths behind the inspection hooks (dlexp/hooks/inspection.py): layer statistics
(layer_stats.py), projector embeddings (embeddings.py), the confusion matrix
(confusion.py). Reading runs back: `events.scalars_table` (every scalar under a dir as
one Polars table), `python -m dlexp.report` (PNG plots and a markdown summary).
"""
