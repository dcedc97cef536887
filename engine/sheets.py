"""Labelled contact sheets and grids, drawn with Pillow's own font (no font files shipped).

Every function takes and returns float32 RGB arrays ``(h, w, 3)`` in 0..1, top row first,
so a sheet is an ordinary image: the caller turns it into a packed Blender image.
Tiles are placed pixel for pixel (never resampled): a grid cell is exactly its image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

LABEL_HEIGHT = 16  # pixels: one line of Pillow's default font with a margin
GAP = 4  # pixels between tiles
BACKGROUND = 0.12
TEXT = 235  # 8-bit grey of the label text


@functools.lru_cache(maxsize=1)
def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.load_default()


def label(text: str, width: int, height: int = LABEL_HEIGHT, align: str = "left") -> np.ndarray:
    """A strip ``(height, width, 3)`` with ``text`` in Pillow's default font, cut to fit."""
    from PIL import Image, ImageDraw

    strip = Image.new("L", (max(width, 1), height), round(BACKGROUND * 255))
    draw = ImageDraw.Draw(strip)
    font = _font()
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-2] + "…" if len(text) > 2 else ""
    left = 2
    if align == "center":
        left = max(int((width - draw.textlength(text, font=font)) / 2), 2)
    draw.text((left, 2), text, fill=TEXT, font=font)
    grey = np.asarray(strip, dtype=np.float32) / 255.0
    return np.repeat(grey[:, :, None], 3, axis=2)


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink by a whole factor (box filter) until the longer side is at most ``max_side``; never enlarges."""
    factor = max(1, math.ceil(max(image.shape[:2]) / max_side))
    if factor == 1:
        return image
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    cropped = image[:h, :w]
    return cropped.reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3)).astype(np.float32)


def enlarge(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour enlargement to ``(height, width)`` (latent previews: blocks, not blur)."""
    rows = (np.arange(height) * image.shape[0] // height).clip(0, image.shape[0] - 1)
    cols = (np.arange(width) * image.shape[1] // width).clip(0, image.shape[1] - 1)
    return image[rows][:, cols]


def contact_sheet(tiles: Sequence[np.ndarray], labels: Sequence[str], columns: int) -> np.ndarray:
    """Tiles of one size in rows of ``columns``, each with its label below it."""
    if not tiles:
        raise ValueError("tiles must hold at least one image; got none.")
    th, tw = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    cell_h, cell_w = th + LABEL_HEIGHT + GAP, tw + GAP
    sheet = np.full((rows * cell_h + GAP, columns * cell_w + GAP, 3), BACKGROUND, dtype=np.float32)
    for index, (tile, text) in enumerate(zip(tiles, labels, strict=True)):
        top, left = GAP + (index // columns) * cell_h, GAP + (index % columns) * cell_w
        sheet[top : top + th, left : left + tw] = tile[..., :3]
        sheet[top + th : top + th + LABEL_HEIGHT, left : left + tw] = label(text, tw)
    return sheet


def labelled_grid(
    cells: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str], column_labels: Sequence[str], title: str = ""
) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """A grid of same-size images with a header row and a label column, each cell unscaled.

    Returns the grid and, per cell, the (top, left) pixel of its image (top row first), so
    a caller can crop a cell back out.
    """
    ch, cw = cells[0][0].shape[:2]
    label_w = min(max(96, max((len(t) for t in row_labels), default=0) * 7 + 8), 240)
    top0 = (LABEL_HEIGHT if title else 0) + LABEL_HEIGHT + GAP
    height = top0 + len(cells) * (ch + GAP)
    width = label_w + GAP + len(column_labels) * (cw + GAP)
    grid = np.full((height, width, 3), BACKGROUND, dtype=np.float32)
    if title:
        grid[:LABEL_HEIGHT] = label(title, width)
    header = LABEL_HEIGHT if title else 0
    origins: list[list[tuple[int, int]]] = []
    for c, text in enumerate(column_labels):
        left = label_w + GAP + c * (cw + GAP)
        grid[header : header + LABEL_HEIGHT, left : left + cw] = label(text, cw, align="center")
    for r, row in enumerate(cells):
        top = top0 + r * (ch + GAP)
        middle = top + max((ch - LABEL_HEIGHT) // 2, 0)
        grid[middle : middle + LABEL_HEIGHT, :label_w] = label(row_labels[r], label_w)
        origins.append([])
        for c, cell in enumerate(row):
            left = label_w + GAP + c * (cw + GAP)
            grid[top : top + ch, left : left + cw] = cell[..., :3]
            origins[-1].append((top, left))
    return grid, origins


def heat_colours(values: np.ndarray) -> np.ndarray:
    """0..1 -> black, red, yellow, white (a heat ramp that prints readably in grey too)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    return np.clip(np.concatenate([3 * v, 3 * v - 1, 3 * v - 2], axis=-1), 0.0, 1.0).astype(np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, amount: float = 0.6) -> np.ndarray:
    """``heat`` (h, w) in 0..1 over ``image``: strong where the heat is, the image shows through elsewhere."""
    weight = (amount * np.clip(heat, 0.0, 1.0))[..., None]
    return (image[..., :3] * (1.0 - weight) + heat_colours(heat) * weight).astype(np.float32)


def rgba(rgb: np.ndarray) -> np.ndarray:
    out = np.ones((*rgb.shape[:2], 4), dtype=np.float32)
    out[..., :3] = rgb[..., :3]
    return out
