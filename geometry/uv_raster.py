"""Rasterise a mesh's UV triangles into a texture: which texel lies on which surface point.

Texture arrays here are (size, size, ...) with the TOP row first, like every image
outside Blender (``bridge/pixels.py`` flips rows at the Blender boundary); UV v = 0 is
the bottom row. A texel is covered when its centre lies inside a UV triangle (the
rule Blender's bake uses); the texels around the islands are the gutter, filled
later (``geometry.fill``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Candidate texels (triangle bounding boxes) tested per chunk: bounds the memory of
# a 8192^2 texture to a few hundred MB whatever the mesh.
_CHUNK_TEXELS = 1 << 22
# Barycentric slack so texel centres exactly on a shared edge belong to a triangle.
_EDGE_EPSILON = 1e-7
# A texel is "shared" (overlapping islands) only when it lies well inside two triangles.
_OVERLAP_INSET = 1e-3


@dataclass
class SurfaceTexels:
    """The covered texels of a texture and the surface point each one shows.

    ``index``: flat indices into the (size*size) top-row-first texture, ascending;
    ``position``/``normal``: (M, 3) float32 world position and unit normal;
    ``triangle``: (M,) the UV triangle each texel came from;
    ``shared``: how many texels lie inside more than one triangle (overlapping or
    mirrored UV islands; the last triangle wins).
    """

    size: int
    index: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    triangle: np.ndarray
    shared: int

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

    winner = np.full(size * size, -1, dtype=np.int64)
    weights = np.zeros((size * size, 2), dtype=np.float32)
    interior_hits = np.zeros(size * size, dtype=np.uint8)
    # Texel (x, y) has its centre at uv = ((x + 0.5) / size, (y + 0.5) / size), y counted from the bottom.
    corners = uv * size - 0.5
    origin = corners[:, 0]
    edge_1 = corners[:, 1] - origin
    edge_2 = corners[:, 2] - origin
    determinant = edge_1[:, 0] * edge_2[:, 1] - edge_1[:, 1] * edge_2[:, 0]
    low = np.clip(np.ceil(corners.min(axis=1) - 1e-9), 0, size)
    high = np.clip(np.floor(corners.max(axis=1) + 1e-9), -1, size - 1)
    box = (high - low + 1).clip(0).astype(np.int64)
    counts = box[:, 0] * box[:, 1]
    counts[np.abs(determinant) < 1e-12] = 0
    triangles = np.flatnonzero(counts)
    for chunk in _chunks(triangles, counts[triangles]):
        chunk_counts = counts[chunk]
        tri = np.repeat(chunk, chunk_counts)
        starts = np.cumsum(chunk_counts) - chunk_counts
        local = np.arange(len(tri), dtype=np.int64) - np.repeat(starts, chunk_counts)
        width = box[tri, 0]
        x = low[tri, 0] + local % width
        y = low[tri, 1] + local // width
        dx = x - origin[tri, 0]
        dy = y - origin[tri, 1]
        inverse = 1.0 / determinant[tri]
        w1 = (dx * edge_2[tri, 1] - dy * edge_2[tri, 0]) * inverse
        w2 = (edge_1[tri, 0] * dy - edge_1[tri, 1] * dx) * inverse
        w0 = 1.0 - w1 - w2
        inside = (w0 >= -_EDGE_EPSILON) & (w1 >= -_EDGE_EPSILON) & (w2 >= -_EDGE_EPSILON)
        flat = ((size - 1 - y) * size + x).astype(np.int64)[inside]
        interior = (np.minimum(np.minimum(w0, w1), w2) > _OVERLAP_INSET)[inside]
        np.add.at(interior_hits, flat[interior], 1)
        winner[flat] = tri[inside]
        weights[flat, 0] = w1[inside]
        weights[flat, 1] = w2[inside]

    index = np.flatnonzero(winner >= 0)
    triangle = winner[index]
    w1 = weights[index, 0:1].astype(np.float64)
    w2 = weights[index, 1:2].astype(np.float64)
    w0 = 1.0 - w1 - w2
    corner_positions = positions[triangle]
    corner_normals = normals[triangle]
    position = w0 * corner_positions[:, 0] + w1 * corner_positions[:, 1] + w2 * corner_positions[:, 2]
    normal = w0 * corner_normals[:, 0] + w1 * corner_normals[:, 1] + w2 * corner_normals[:, 2]
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = normal / np.where(length > 1e-12, length, 1.0)
    return SurfaceTexels(
        size=size,
        index=index,
        position=position.astype(np.float32),
        normal=normal.astype(np.float32),
        triangle=triangle.astype(np.int32),
        shared=int(np.count_nonzero(interior_hits > 1)),
    )


def _chunks(triangles: np.ndarray, counts: np.ndarray):
    """Consecutive runs of triangles whose bounding boxes hold about _CHUNK_TEXELS texels."""
    if len(triangles) == 0:
        return
    bounds = np.searchsorted(np.cumsum(counts), np.arange(_CHUNK_TEXELS, counts.sum() + _CHUNK_TEXELS, _CHUNK_TEXELS))
    start = 0
    for end in np.unique(np.append(bounds + 1, len(triangles))):
        end = min(int(end), len(triangles))
        if end > start:
            yield triangles[start:end]
            start = end
