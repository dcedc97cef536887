"""Views side by side in a grid image (``object_method = GRID``): tile the views' control images into
a grid, generate it once (one palette, one lighting, one denoising pass), cut the result back into views.

At the model's own scale (issue 23): every grid generation keeps the area of one image of Width x Height
(the model's native size when set by Use Recommended Settings); the views are its cells, at most
``MAX_CELLS`` to a grid, so a cell is never under half the size on a side. More views are split evenly
over several grid generations (``plan_grids``), every cell the same size, no blank cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_CELLS = 4  # cells per grid generation: a cell keeps at least half the generation's width and height


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the most square grid with room for ``count`` views, wider than tall."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def exact_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the most square grid of exactly ``count`` cells, wider than tall (no blank cell)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    rows = max(r for r in range(1, math.isqrt(count) + 1) if count % r == 0)
    return rows, count // rows


@dataclass(frozen=True)
class GridPlan:
    """How the views of a GRID run are generated: ``groups`` holds each grid generation's view indices (0-based,
    in view order); every view is a ``cell`` (width, height) of its grid, laid out by ``exact_shape``."""

    groups: tuple[tuple[int, ...], ...]
    cell: tuple[int, int]

    def shape(self, group: int) -> tuple[int, int]:
        return exact_shape(len(self.groups[group]))

    def size(self, group: int) -> tuple[int, int]:
        """(width, height) of grid generation ``group``."""
        rows, columns = self.shape(group)
        return columns * self.cell[0], rows * self.cell[1]

    def recipe(self) -> dict:
        """The recipe's ``grid`` entry: the cell size and each generation's views (counting from 1)."""
        return {"cell": list(self.cell), "generations": [[index + 1 for index in group] for group in self.groups]}


def plan_grids(count: int, width: int, height: int, smallest: int = 8) -> GridPlan:
    """``count`` views over ceil(count / MAX_CELLS) grid generations, split evenly (the first ones take the
    one view more); each cell keeps the aspect of ``width`` x ``height`` and the largest grid that area, the
    cell's sides rounded to multiples of 8 — but no grid side under ``smallest`` (what the engine generates:
    tiny sizes shrink less)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    generations = math.ceil(count / MAX_CELLS)
    base, extra = divmod(count, generations)
    groups, start = [], 0
    for index in range(generations):
        size = base + (index < extra)
        groups.append(tuple(range(start, start + size)))
        start += size
    shapes = [exact_shape(len(group)) for group in groups]
    rows, columns = min(shape[0] for shape in shapes), min(shape[1] for shape in shapes)
    scale = max(1.0 / math.sqrt(max(len(group) for group in groups)), smallest / (rows * height),
                smallest / (columns * width))
    cell = (max(_multiple_of_8(width * scale), _multiple_of_8(smallest / columns, up=True)),
            max(_multiple_of_8(height * scale), _multiple_of_8(smallest / rows, up=True)))
    return GridPlan(tuple(groups), cell)


def _multiple_of_8(value: float, up: bool = False) -> int:
    return max(8, (math.ceil(value / 8) if up else int(value / 8 + 0.5)) * 8)


def tile(images: list[np.ndarray], fill: float = 0.0, layout: tuple[int, int] | None = None) -> np.ndarray:
    """Views (each (h, w, C), all the same size) row by row into one (rows*h, columns*w, C) image of
    ``layout`` (rows, columns; default ``grid_shape``); the cells left over hold ``fill``."""
    if not images:
        raise ValueError("images must hold at least one view")
    shape = images[0].shape
    if any(image.shape != shape for image in images):
        raise ValueError(f"images must all have the shape of the first, {shape}")
    rows, columns = layout or grid_shape(len(images))
    if rows * columns < len(images):
        raise ValueError(f"{len(images)} views do not fit a grid of {rows}x{columns}")
    height, width = shape[:2]
    grid = np.full((rows * height, columns * width) + shape[2:], fill, dtype=images[0].dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return grid


def untile(grid: np.ndarray, count: int, layout: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The ``count`` views of a grid made by ``tile`` with the same ``layout`` (copies, in the same order)."""
    rows, columns = layout or grid_shape(count)
    if grid.shape[0] % rows or grid.shape[1] % columns:
        raise ValueError(f"grid of {grid.shape[1]}x{grid.shape[0]} does not split into {columns}x{rows} equal cells")
    height, width = grid.shape[0] // rows, grid.shape[1] // columns
    return [grid[r * height:(r + 1) * height, c * width:(c + 1) * width].copy()
            for r, c in (divmod(index, columns) for index in range(count))]
