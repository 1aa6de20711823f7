"""Images shown as they are, without axes: model inputs scaled for display and tiled into a grid
(GAN samples, reconstructions, the report's latent walks)."""

from __future__ import annotations

import numpy as np

GRID_SCALE = 4  # nearest-neighbour upscaling of small images (8x8 digits) so they are visible


def to_display(images: np.ndarray) -> np.ndarray:
    """[n, H, W, C] scaled per image to [0, 1] (data is standardized; only the pattern matters)."""
    x = np.asarray(images, np.float32)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return (x - lo) / np.maximum(hi - lo, 1e-8)


def image_grid(images: np.ndarray, cols: int = 8, scale: int = GRID_SCALE) -> np.ndarray:
    """[n, H, W, C] -> one [rows*(H*s+1)+1, cols*(W*s+1)+1, 3] image with 1-pixel gaps, values in [0, 1]."""
    x = to_display(images)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = x[..., :3].repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, _ = x.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i]
    return grid
