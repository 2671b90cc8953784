"""Image grids: many small images as one picture, optionally scaled up by whole pixels.

    make_grid(images (N, H, W, C) uint8, nrow=8, padding=2, scale=4) → uint8 (rows·(H+p)+p)·s × ...
"""

from __future__ import annotations

import math

import numpy as np


def make_grid(images: np.ndarray, nrow: int = 8, padding: int = 2, scale: int = 1, pad_value: int = 255
              ) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        grid[y:y + h, x:x + w] = images[i]
    return grid[..., 0] if c == 1 else grid
