"""All views in one image (``object_method = GRID``): tile the views' control images into one
grid, generate once (one palette, one lighting, one denoising pass), cut the result back into views."""

from __future__ import annotations

import math

import numpy as np


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the most square grid with room for ``count`` views, wider than tall."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def tile(images: list[np.ndarray], fill: float = 0.0) -> np.ndarray:
    """Views (each (h, w, C), all the same size) row by row into one (rows*h, columns*w, C) image;
    the cells left over hold ``fill``."""
    if not images:
        raise ValueError("images must hold at least one view")
    shape = images[0].shape
    if any(image.shape != shape for image in images):
        raise ValueError(f"images must all have the shape of the first, {shape}")
    rows, columns = grid_shape(len(images))
    height, width = shape[:2]
    grid = np.full((rows * height, columns * width) + shape[2:], fill, dtype=images[0].dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return grid


def untile(grid: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` views of a grid made by ``tile`` (copies, in the same order)."""
    rows, columns = grid_shape(count)
    if grid.shape[0] % rows or grid.shape[1] % columns:
        raise ValueError(f"grid of {grid.shape[1]}x{grid.shape[0]} does not split into {columns}x{rows} equal cells")
    height, width = grid.shape[0] // rows, grid.shape[1] // columns
    return [grid[r * height:(r + 1) * height, c * width:(c + 1) * width].copy()
            for r, c in (divmod(index, columns) for index in range(count))]
