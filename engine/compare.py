"""Comparison grids: one prompt and seed, guidance values along a row, schedulers or step counts down a column.

Every cell is an ordinary ``GenerationRequest`` (the base request with one field or two
changed), so a cell is exactly the image Generate makes with those settings. Plain
numpy + Pillow; the engine runs the cells.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from . import sheets
from .request import MAX_GUIDANCE, MAX_STEPS, SCHEDULERS, GenerationRequest

AXES = ("SCHEDULER", "STEPS")
DEFAULT_GUIDANCE = (1.0, 3.0, 7.5, 12.0, 20.0)
MAX_VALUES = 12  # per axis: a grid is for comparing, not for sweeping
MAX_GRID_SIDE = 16384  # pixels: the largest image Blender's image editor and GPU textures handle
BYTES_PER_CELL_PIXEL = 3 * 16  # float32 RGBA for the cell's result, the grid and Blender's copy of it
MEMORY_SHARE = 0.5  # of the machine's memory a grid may take
ROW_EXPLANATION = (
    "Guidance left to right: at 1 the prompt is ignored; above 15 colours burn (guidance pushes past what the "
    "model learned)"
)


@dataclasses.dataclass
class GridPlan:
    """The requests, row by row, and the labels of the rows and columns."""

    rows: list[list[GenerationRequest]]
    row_labels: list[str]
    column_labels: list[str]
    axis: str
    guidance: list[float]
    values: list[Any]  # schedulers or step counts, one per row


def parse_numbers(text: str, name: str, *, integer: bool = False) -> list[float] | list[int]:
    """"1, 3, 7.5" -> [1.0, 3.0, 7.5]; a clear ``ValueError`` naming ``name`` otherwise."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise ValueError(f"{name} must list at least one number (e.g. '1, 3, 7.5'); got {text!r}.")
    values: list[Any] = []
    for part in parts:
        try:
            value = int(part) if integer else float(part)
        except ValueError:
            kind = "whole numbers" if integer else "numbers"
            raise ValueError(f"{name} must be {kind} separated by commas; {part!r} is not one.") from None
        if not integer and not math.isfinite(value):
            raise ValueError(f"{name} must be finite numbers; got {part!r}.")
        values.append(value)
    if len(values) > MAX_VALUES:
        raise ValueError(f"{name} may list at most {MAX_VALUES} values; got {len(values)}.")
    return values


def parse_schedulers(text: str) -> list[str]:
    names = [p.strip().upper() for p in text.replace(";", ",").split(",") if p.strip()]
    if not names:
        raise ValueError(f"schedulers must list at least one of {', '.join(SCHEDULERS)}; got {text!r}.")
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown:
        raise ValueError(f"schedulers must be among {', '.join(SCHEDULERS)}; unknown: {', '.join(unknown)}.")
    if len(names) > MAX_VALUES:
        raise ValueError(f"schedulers may list at most {MAX_VALUES}; got {len(names)}.")
    return names


def _guidance_label(value: float) -> str:
    return f"guidance {value:g}"


def plan_grid(base: GenerationRequest, guidance: list[float], axis: str, values: list[Any]) -> GridPlan:
    """Requests for every (row value, guidance) pair, each validated; the grid's memory checked.

    Raises:
        ValueError: a bad value (named), or a grid too large to hold, before anything runs.
    """
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}; got {axis!r}.")
    if base.seed is None:
        raise ValueError("seed must be fixed for a comparison grid (every cell uses the same seed); got None.")
    for value in guidance:
        if not 0 <= value <= MAX_GUIDANCE:
            raise ValueError(f"guidance values must be from 0 to {MAX_GUIDANCE:g}; got {value:g}.")
    if axis == "STEPS":
        for value in values:
            if not 1 <= value <= MAX_STEPS:
                raise ValueError(f"steps values must be whole numbers from 1 to {MAX_STEPS}; got {value!r}.")
    check_grid_size(len(values), len(guidance), base.width, base.height)
    field = "scheduler" if axis == "SCHEDULER" else "steps"
    rows = []
    for value in values:
        row = [dataclasses.replace(base, guidance_scale=float(g), **{field: value}) for g in guidance]
        for request in row:
            request.validate()
        rows.append(row)
    row_labels = [str(v) if axis == "SCHEDULER" else f"{v} steps" for v in values]
    return GridPlan(rows, row_labels, [_guidance_label(g) for g in guidance], axis, list(guidance), list(values))


def machine_memory() -> int | None:
    """Bytes of physical memory, where the OS says (None elsewhere)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_grid_size(rows: int, columns: int, width: int, height: int) -> None:
    """Refuse a grid larger than an image may be, or than memory holds, with the numbers and the fix."""
    grid_w = 240 + columns * (width + sheets.GAP)
    grid_h = 2 * sheets.LABEL_HEIGHT + rows * (height + sheets.GAP)
    if max(grid_w, grid_h) > MAX_GRID_SIDE:
        raise ValueError(
            f"The comparison grid would be {grid_w} x {grid_h} pixels, more than the {MAX_GRID_SIDE} pixels an "
            "image may have on a side: use fewer values or a smaller width and height."
        )
    need = rows * columns * width * height * BYTES_PER_CELL_PIXEL
    memory = machine_memory()
    if memory is not None and need > MEMORY_SHARE * memory:
        raise ValueError(
            f"The comparison grid needs about {need / 2**30:.1f} GiB, more than half of this machine's "
            f"{memory / 2**30:.1f} GiB: use fewer values or a smaller width and height."
        )


def compose(plan: GridPlan, images: list[list[np.ndarray]], title: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The grid (float32 RGBA, top row first) and its recipe keys; each cell is its image, pixel for pixel."""
    grid, origins = sheets.labelled_grid(images, plan.row_labels, plan.column_labels, title)
    recipe = {
        "insight": "compare",
        "axis": plan.axis,
        "guidance_values": [float(g) for g in plan.guidance],
        "row_values": ", ".join(str(v) for v in plan.values),
        # Each cell's (top, left) pixel, top row first, rows then columns: a cell can be cropped back out.
        "cell_tops": [top for row in origins for top, _ in row],
        "cell_lefts": [left for row in origins for _, left in row],
        "cell_width": int(images[0][0].shape[1]),
        "cell_height": int(images[0][0].shape[0]),
    }
    return sheets.rgba(grid), recipe
