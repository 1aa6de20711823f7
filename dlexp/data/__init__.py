"""Data: read with Polars, split, prepare (fitted on train only), and put on device.

`load_dataset` calls the dataset config's `_target_` and returns a `Dataset`: numpy
arrays per split plus what the model and task need to know about them.
"""

from dlexp.data.dataset import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
