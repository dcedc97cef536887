"""Large images in model-sized tiles: where the tiles go, how they blend back, wrap-around.

numpy only (Pillow for the Lanczos resize, imported when used), so the layout
rules are testable without torch. Used by the upscaler: the image is resized
up, every tile is redrawn at the model's native size, and the redrawn tiles are
blended with weights that sum to one at every pixel.

A *wrapped* axis treats the image as a torus along it: tiles are placed modulo
the size and may run over the edge, so a seamless texture stays seamless.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_OVERLAP = 64  # pixels: below this, blended tiles show their borders
RESIZE_WRAP_PADDING = 4  # source pixels: covers Lanczos-3's support when upscaling


@dataclass(frozen=True)
class Tile:
    """One tile: its top-left pixel in the image and its size. On a wrapped axis it may run past the edge."""

    index: int
    y: int
    x: int
    height: int
    width: int


def axis_origins(size: int, tile: int, overlap: int, wrap: bool) -> tuple[list[int], int]:
    """Where tiles start along one axis, and their length there.

    Args:
        size: the image's length along the axis.
        tile: the wanted tile length (the model's native size).
        overlap: the least overlap between neighbouring tiles.
        wrap: the axis wraps around (seamless): tiles are evenly spaced modulo ``size``.

    Returns:
        ``(origins, length)``. An axis no longer than ``tile`` is one tile of the whole length.
    """
    if size <= 0 or tile <= 0:
        raise ValueError(f"size and tile must be positive; got size {size}, tile {tile}.")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be at least 0 and less than the tile size {tile}; got {overlap}.")
    if size <= tile:
        return [0], size
    stride = tile - overlap
    if wrap:
        count = math.ceil(size / stride)
        return [round(k * size / count) for k in range(count)], tile
    count = math.ceil((size - overlap) / stride)
    return [round(v) for v in np.linspace(0, size - tile, count)], tile


def layout(height: int, width: int, tile: int, overlap: int, wrap_x: bool, wrap_y: bool) -> list[Tile]:
    """Every tile of a ``height`` x ``width`` image, row by row."""
    ys, tile_h = axis_origins(height, tile, overlap, wrap_y)
    xs, tile_w = axis_origins(width, tile, overlap, wrap_x)
    return [Tile(i * len(xs) + j, y, x, tile_h, tile_w) for i, y in enumerate(ys) for j, x in enumerate(xs)]


def window(length: int) -> np.ndarray:
    """A blend weight along one tile axis: a pyramid, highest in the middle, never zero.

    Never zero so that the edge of the image (covered by one tile only) keeps its
    pixels; the weights are normalised per pixel by ``blend``.
    """
    ramp = np.minimum(np.arange(length) + 1, length - np.arange(length)).astype(np.float64)
    return ramp / ramp.max()


def _indices(start: int, length: int, size: int, wrap: bool) -> np.ndarray:
    index = np.arange(start, start + length)
    if wrap:
        return index % size
    if index[-1] >= size:
        raise ValueError(f"a tile at {start} of length {length} runs past the image's {size} pixels")
    return index


def extract(image: np.ndarray, tile: Tile, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """The pixels of ``tile`` (wrapping around the edge on wrapped axes), a new array."""
    rows = _indices(tile.y, tile.height, image.shape[0], wrap_y)
    cols = _indices(tile.x, tile.width, image.shape[1], wrap_x)
    return image[np.ix_(rows, cols)]


def pad_to_multiple(pixels: np.ndarray, multiple: int = 8) -> np.ndarray:
    """Edge-extend a tile to a multiple of ``multiple`` pixels (the model's stride); cropped again after."""
    height, width = pixels.shape[:2]
    pad_y, pad_x = -height % multiple, -width % multiple
    return np.pad(pixels, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge") if pad_y or pad_x else pixels


def own_wrap(tile: Tile, height: int, width: int, wrap_x: bool, wrap_y: bool) -> str:
    """The seamless axes a tile is drawn with: one spanning a whole wrapped axis must wrap itself there."""
    whole_x = wrap_x and tile.width == width
    whole_y = wrap_y and tile.height == height
    return "BOTH" if whole_x and whole_y else "X" if whole_x else "Y" if whole_y else "NONE"


class TileBlend:
    """Accumulates redrawn tiles with their window weights; ``result()`` divides by the weight sum."""

    def __init__(self, height: int, width: int, channels: int, wrap_x: bool, wrap_y: bool) -> None:
        self.wrap_x, self.wrap_y = wrap_x, wrap_y
        self.total = np.zeros((height, width, channels), dtype=np.float64)
        self.weights = np.zeros((height, width), dtype=np.float64)

    def add(self, tile: Tile, pixels: np.ndarray) -> None:
        if pixels.shape[:2] != (tile.height, tile.width):
            raise ValueError(f"tile {tile.index} must be {tile.height}x{tile.width}; got {pixels.shape[:2]}")
        rows = _indices(tile.y, tile.height, self.weights.shape[0], self.wrap_y)
        cols = _indices(tile.x, tile.width, self.weights.shape[1], self.wrap_x)
        weight = np.outer(window(tile.height), window(tile.width))
        # np.add.at: a wrapped tile longer than the image would hit a pixel twice
        np.add.at(self.total, np.ix_(rows, cols), pixels * weight[..., None])
        np.add.at(self.weights, np.ix_(rows, cols), weight)

    def result(self) -> np.ndarray:
        if not (self.weights > 0).all():
            raise ValueError("some pixels were covered by no tile")
        return (self.total / self.weights[..., None]).astype(np.float32)


def redraw(
    image: np.ndarray,
    tiles: list[Tile],
    draw: Callable[[Tile, np.ndarray], np.ndarray],
    *,
    wrap_x: bool,
    wrap_y: bool,
) -> np.ndarray:
    """Redraw ``image`` tile by tile with ``draw(tile, pixels) -> pixels`` and blend the tiles back."""
    blend = TileBlend(image.shape[0], image.shape[1], image.shape[2], wrap_x, wrap_y)
    for tile in tiles:
        blend.add(tile, draw(tile, extract(image, tile, wrap_x, wrap_y)))
    return blend.result()


def resize(image: np.ndarray, factor: int, *, wrap_x: bool, wrap_y: bool, method: str = "LANCZOS") -> np.ndarray:
    """``image`` (h, w, c) float32 scaled by an integer ``factor`` with Pillow's filter ``method``.

    On wrapped axes the source is padded with its own opposite edge first and the
    padding cropped after, so the filter sees the torus: resizing an image rolled
    by k pixels gives the resized image rolled by ``factor`` x k.
    """
    from PIL import Image

    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive integer; got {factor!r}.")
    filters = {"LANCZOS": Image.Resampling.LANCZOS, "NEAREST": Image.Resampling.NEAREST}
    if method not in filters:
        raise ValueError(f"method must be one of {', '.join(filters)}; got {method!r}.")
    pad_y = RESIZE_WRAP_PADDING if wrap_y else 0
    pad_x = RESIZE_WRAP_PADDING if wrap_x else 0
    padded = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="wrap")
    height, width = padded.shape[0] * factor, padded.shape[1] * factor
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(padded[..., c], dtype=np.float32), mode="F").resize(
            (width, height), filters[method]))
        for c in range(image.shape[2])
    ]
    out = np.stack(channels, axis=-1)
    out = out[pad_y * factor: height - pad_y * factor, pad_x * factor: width - pad_x * factor]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
