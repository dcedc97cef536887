"""Rasterise a mesh's UV triangles into a texture: which texel lies on which surface point.

Texture arrays here are (size, size, ...) with the TOP row first, like every image
outside Blender (``bridge/pixels.py`` flips rows at the Blender boundary); UV v = 0 is
the bottom row. A texel is covered when its centre lies inside a UV triangle (the
rule Blender's bake uses); the texels around the islands are the gutter, filled
later (``geometry.fill``).

UVs anywhere: texels are found modulo the UV tile (Blender repeats the image outside 0..1).
Each triangle is moved by its island's tile (``geometry.uv_tiles``) and its texel coordinates
wrap around the texture, so an island poking past a tile border is not cut. A texel inside
several triangles (mirrored halves, stacked islands) keeps every surface point it shows: one
as the texel's own, the others as ``extra_*`` fragments that the bake pools into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .uv_tiles import triangle_tiles

# Barycentric slack so texel centres exactly on a shared edge belong to a triangle.
_EDGE_EPSILON = 1e-7
# A texel is "shared" (overlapping islands) only when it lies well inside two triangles.
_OVERLAP_INSET = 1e-3


@dataclass
class SurfaceTexels:
    """The covered texels of a texture and the surface point each one shows.

    ``index``: flat indices into the (size*size) top-row-first texture, in triangle order (texels
    near each other on the surface are near each other in these arrays);
    ``position``/``normal``: (M, 3) float32 position relative to ``origin`` (float64 world; float32
    keeps its precision near the object, however far it is from the world origin) and unit normal;
    ``triangle``: (M,) the UV triangle each texel came from (the last one covering it);
    ``shared``: how many texels lie well inside more than one triangle (overlapping or mirrored UV
    islands); ``extra_owner`` (K,) / ``extra_position`` / ``extra_normal`` / ``extra_triangle``:
    the other surface points of texels covered more than once, by the texel (index into these
    arrays) they belong to.
    """

    size: int
    index: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    triangle: np.ndarray
    shared: int
    spacing: float
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    extra_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra_position: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.float32))
    extra_normal: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.float32))
    extra_triangle: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    @property
    def world_position(self) -> np.ndarray:
        """(M, 3) float64 world position of each texel."""
        return self.position + self.origin

    @property
    def mask(self) -> np.ndarray:
        """(size, size) bool, True where a texel is covered."""
        covered = np.zeros(self.size * self.size, dtype=bool)
        covered[self.index] = True
        return covered.reshape(self.size, self.size)


def rasterize_uv_triangles(
    uv: np.ndarray, positions: np.ndarray, normals: np.ndarray, size: int
) -> SurfaceTexels:
    """Barycentric interpolation of per-corner ``positions`` and ``normals`` over every texel.

    ``uv``: (T, 3, 2) UV coordinates of each triangle's corners; ``positions`` and
    ``normals``: (T, 3, 3) world position and normal at the same corners (give the
    face normal at all three corners of a flat-shaded face, the vertex/corner normal
    of a smooth one). ``size``: the texture's width and height in texels.
    """
    uv = np.asarray(uv, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    if uv.ndim != 3 or uv.shape[1:] != (3, 2):
        raise ValueError(f"uv must have shape (T, 3, 2), got {uv.shape}")
    for name, array in (("positions", positions), ("normals", normals)):
        if array.shape != (len(uv), 3, 3):
            raise ValueError(f"{name} must have shape ({len(uv)}, 3, 3) like uv, got {array.shape}")
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of texels, got {size}")
    size = int(size)
    flat_positions = positions.reshape(-1, 3)
    origin = 0.5 * (flat_positions.min(axis=0) + flat_positions.max(axis=0)) if len(uv) else np.zeros(3)
    positions = positions - origin

    # Texel (x, y) has its centre at uv = ((x + 0.5) / size, (y + 0.5) / size), y counted from the bottom,
    # so in these "texel" coordinates texel centres are the integer points. Each triangle is moved into
    # tile 1001 by its island's tile; texel coordinates outside 0..size wrap around (the image repeats).
    corners = (uv - triangle_tiles(uv, positions)[:, None, :]) * size - 0.5
    barycentric = _barycentric_planes(corners)  # (T, 3 weights, 3 coefficients of x, y, 1)
    low = np.clip(np.ceil(corners.min(axis=1) - 1e-9), -size, 2 * size).astype(np.int64)
    high = np.clip(np.floor(corners.max(axis=1) + 1e-9), -size - 1, 2 * size - 1).astype(np.int64)
    valid = np.isfinite(barycentric).all(axis=(1, 2)) & (high >= low).all(axis=1)
    triangles = np.flatnonzero(valid)
    rows_per_triangle = (high[triangles, 1] - low[triangles, 1] + 1)
    # One scanline per (triangle, row): the span of texel centres inside the triangle.
    of_triangle = _expanded_index(rows_per_triangle)
    span_triangle = triangles[of_triangle]
    span_row = (np.arange(len(span_triangle)) - (np.cumsum(rows_per_triangle) - rows_per_triangle)[of_triangle]
                + low[span_triangle, 1])
    first, last = _span_bounds(barycentric[span_triangle], span_row,
                               low[span_triangle, 0], high[span_triangle, 0])
    span_length = np.maximum(last - first + 1, 0)
    keep = span_length > 0
    span_triangle, span_row, first, span_length = span_triangle[keep], span_row[keep], first[keep], span_length[keep]

    # Per texel, gathered from its span (``_expanded_index``: not np.repeat, which holds the GIL).
    generated = int(span_length.sum())
    span_start = np.cumsum(span_length) - span_length
    span = _expanded_index(span_length)
    column = np.arange(generated, dtype=np.int32) + (first - span_start).astype(np.int32)[span]
    flat = ((size - 1 - span_row % size) * size).astype(np.int32)[span] + column % size
    position = _affine_attribute(positions, barycentric, span_triangle, span_row, span, column)
    normal = _affine_attribute(normals, barycentric, span_triangle, span_row, span, column)
    triangle = span_triangle.astype(np.int32)[span]
    covered = np.zeros(size * size, dtype=bool)
    covered[flat] = True
    _normalise(normal)
    shared = 0
    extra = {}
    if np.count_nonzero(covered) < generated:
        # Texels inside several triangles: the last triangle's point is the texel's own, the others are
        # kept as extra fragments of it (the bake pools them all).
        slot = np.full(size * size, -1, dtype=np.int32)
        slot[flat] = np.arange(generated, dtype=np.int32)
        shared = _shared_texels(barycentric, span_triangle, span_row, span, column, flat, slot)
        is_winner = slot[flat] == np.arange(generated, dtype=np.int32)
        winners, losers = np.flatnonzero(is_winner), np.flatnonzero(~is_winner)
        texel_of = np.full(size * size, -1, dtype=np.int64)
        texel_of[flat[winners]] = np.arange(len(winners))
        extra = dict(extra_owner=texel_of[flat[losers]], extra_position=position[losers],
                     extra_normal=normal[losers], extra_triangle=triangle[losers])
        flat, position, normal, triangle = flat[winners], position[winners], normal[winners], triangle[winners]
    index = flat.astype(np.int64)
    return SurfaceTexels(size=size, index=index, position=position, normal=normal, triangle=triangle,
                         shared=shared, spacing=_mean_spacing(positions, planes=barycentric, triangle=triangle),
                         origin=origin, **extra)


def _normalise(normal: np.ndarray) -> None:
    """Unit length in place (zero normals stay zero)."""
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))[:, None]
    normal /= np.where(length > 1e-12, length, np.float32(1.0))


def _mean_spacing(positions: np.ndarray, planes: np.ndarray, triangle: np.ndarray) -> float:
    """sqrt of the mean world area per texel (world area / texel area of each texel's triangle)."""
    if len(triangle) == 0:
        return 0.0
    world_area = 0.5 * np.linalg.norm(np.cross(positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0]),
                                      axis=1)
    # |d(w1, w2)/d(x, y)| is 1 / (2 * texel area of the triangle)
    jacobian = np.abs(planes[:, 1, 0] * planes[:, 2, 1] - planes[:, 1, 1] * planes[:, 2, 0])
    per_texel = world_area * 2.0 * np.nan_to_num(jacobian)
    return float(np.sqrt(np.bincount(triangle, minlength=len(positions)) @ per_texel / len(triangle)))


def _barycentric_planes(corners: np.ndarray) -> np.ndarray:
    """(T, 3, 3): each corner's barycentric weight as a plane a*x + b*y + c over texel coordinates."""
    origin = corners[:, 0]
    edge_1 = corners[:, 1] - origin
    edge_2 = corners[:, 2] - origin
    determinant = edge_1[:, 0] * edge_2[:, 1] - edge_1[:, 1] * edge_2[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(np.abs(determinant) > 1e-12, 1.0 / determinant, np.nan)
    planes = np.empty((len(corners), 3, 3))
    # w1 = ((x - x0) * e2y - (y - y0) * e2x) / det ; w2 = (e1x * (y - y0) - e1y * (x - x0)) / det
    planes[:, 1, 0] = edge_2[:, 1] * inverse
    planes[:, 1, 1] = -edge_2[:, 0] * inverse
    planes[:, 1, 2] = -(origin[:, 0] * planes[:, 1, 0] + origin[:, 1] * planes[:, 1, 1])
    planes[:, 2, 0] = -edge_1[:, 1] * inverse
    planes[:, 2, 1] = edge_1[:, 0] * inverse
    planes[:, 2, 2] = -(origin[:, 0] * planes[:, 2, 0] + origin[:, 1] * planes[:, 2, 1])
    planes[:, 0] = -planes[:, 1] - planes[:, 2]
    planes[:, 0, 2] += 1.0
    return planes


def _span_bounds(planes: np.ndarray, row: np.ndarray, low: np.ndarray, high: np.ndarray):
    """First and last integer x on each row where all three weights are >= -epsilon, within [low, high]."""
    first = low.astype(np.float64)
    last = high.astype(np.float64)
    for weight in range(3):
        slope = planes[:, weight, 0]
        offset = planes[:, weight, 1] * row + planes[:, weight, 2] + _EDGE_EPSILON
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = -offset / slope
        first = np.where(slope > 0, np.maximum(first, crossing), first)
        last = np.where(slope < 0, np.minimum(last, crossing), last)
        empty = (slope == 0) & (offset < 0)
        last = np.where(empty, first - 1, last)
    return np.ceil(first - 1e-9).astype(np.int64), np.floor(last + 1e-9).astype(np.int64)


def _expanded_index(counts: np.ndarray) -> np.ndarray:
    """``np.repeat(np.arange(len(counts)), counts)`` (int32; every count at least 1) from a cumulative sum.
    Unlike np.repeat, cumsum and the gathers it feeds release the GIL: on Whole Object's worker, np.repeat over
    a 2048² texture's texels held Blender's UI for 0.2 s at a time."""
    marks = np.zeros(int(counts.sum()), dtype=np.int32)
    marks[np.cumsum(counts[:-1])] = 1
    return np.cumsum(marks, dtype=np.int32)


def _affine_attribute(corner_values, planes, span_triangle, span_row, span, column) -> np.ndarray:
    """Per texel: the barycentric mix of a per-corner attribute, as its span's start + column * slope (float32)."""
    values = corner_values[span_triangle]  # (S, 3 corners, 3)
    coefficients = planes[span_triangle]  # (S, 3 weights, 3)
    slope = np.einsum("sw,swk->sk", coefficients[:, :, 0], values).astype(np.float32)
    start = np.einsum("sw,swk->sk", coefficients[:, :, 1] * span_row[:, None] + coefficients[:, :, 2],
                      values).astype(np.float32)
    result = start[span]
    result += column.astype(np.float32)[:, None] * slope[span]
    return result


def _shared_texels(planes, span_triangle, span_row, span, column, flat, slot) -> int:
    """How many texels lie well inside two triangles (overlapping or mirrored islands), not merely
    on an edge two triangles share. Only texels generated more than once are looked at."""
    losers = np.flatnonzero(slot[flat] != np.arange(len(flat)))
    winners = slot[flat[losers]]

    def interior(generated: np.ndarray) -> np.ndarray:
        coefficients = planes[span_triangle[span[generated]]]
        row = span_row[span[generated]]
        weights = coefficients[:, :, 0] * column[generated, None] + coefficients[:, :, 1] * row[:, None] \
            + coefficients[:, :, 2]
        return weights.min(axis=1) > _OVERLAP_INSET

    both = interior(losers) & interior(winners)
    return int(len(np.unique(flat[losers[both]])))
