"""A vectorised numpy z-buffer: which triangle each pixel centre sees, how far, and where on it.

Why a rasteriser and not ray casting or a render: it is pure numpy (the same headless and
in the UI, no GPU context, no render settings touched), exact at pixel centres, and fast
enough (see ``bench/geometry_passes.py``). Triangles are binned by the power-of-two size of
their pixel bounding box, so each bin tests a dense (triangles x box) block of pixel
centres at once; large triangles are cut into chunks of bounded memory.

Rules (those of a render): a pixel sees the nearest surface whose triangle contains its
centre (edges inclusive) between the camera's clip start and clip end; triangles crossing
the clip start are clipped there; both sides of a face are visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import ViewCamera

# Fragments tested per block; bounds the temporary arrays (~30 bytes each, a few of them).
_BLOCK_FRAGMENTS = 1 << 20
_MIN_AREA = 1e-12


@dataclass(frozen=True)
class SurfaceHits:
    """What each pixel centre of a camera sees; arrays top row first."""

    depth: np.ndarray  # (height, width) float32 view depth; +inf where nothing is hit
    triangle: np.ndarray  # (height, width) int32 index into the rasterised triangles; -1 where nothing is hit
    barycentric: np.ndarray  # (height, width, 3) float32 weights of the triangle's corners at the hit point

    @property
    def covered(self) -> np.ndarray:
        """(height, width) bool: a surface is seen."""
        return self.triangle >= 0


def rasterize(camera: ViewCamera, triangles_world: np.ndarray) -> SurfaceHits:
    """Z-buffer ``(n, 3, 3)`` world-space triangles (corner, xyz) as ``camera`` sees them."""
    triangles = np.asarray(triangles_world, dtype=np.float64)
    if triangles.ndim != 3 or triangles.shape[1:] != (3, 3):
        raise ValueError(f"triangles_world must have shape (n, 3, 3); got {triangles.shape}")
    width, height = camera.width, camera.height
    depth = np.full(width * height, np.inf, dtype=np.float64)
    triangle = np.full(width * height, -1, dtype=np.int32)
    barycentric = np.zeros((width * height, 3), dtype=np.float32)

    near, far = camera.clip_range
    view = camera.to_view(triangles.reshape(-1, 3)).reshape(-1, 3, 3)
    view, source, corner_weights = _clip_near(view, near)
    if len(view):
        clip = camera.clip_from_view(view.reshape(-1, 3)).reshape(-1, 3, 4)
        inverse_w = 1.0 / clip[..., 3]
        screen = camera.pixels_from_ndc((clip[..., :2] * inverse_w[..., None]).reshape(-1, 2)).reshape(-1, 3, 2)
        vertex_depth = -view[..., 2]
        for rows in _bins(screen, width, height):
            for block in _blocks(rows, screen):
                _resolve(block, screen, inverse_w, vertex_depth, near, far, width,
                         source, corner_weights, depth, triangle, barycentric)

    return SurfaceHits(
        depth=depth.astype(np.float32).reshape(height, width),
        triangle=triangle.reshape(height, width),
        barycentric=barycentric.reshape(height, width, 3),
    )


def _clip_near(view: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip view-space triangles at depth ``near``.

    Returns the clipped triangles, the index of the triangle each came from, and each
    corner's barycentric weights on that source triangle ((m, 3 corners, 3 weights)).
    """
    count = len(view)
    inside = -view[..., 2] >= near
    inside_count = inside.sum(axis=1)
    whole = np.flatnonzero(inside_count == 3)
    identity = np.broadcast_to(np.eye(3), (len(whole), 3, 3))
    parts = [(view[whole], whole, identity)]

    for kept in (1, 2):
        index = np.flatnonzero(inside_count == kept)
        if not len(index):
            continue
        # Rotate corners so the odd one out (the one inside when 1 is kept, outside when 2) comes first.
        odd = inside[index] if kept == 1 else ~inside[index]
        first = np.argmax(odd, axis=1)
        order = (first[:, None] + np.arange(3)) % 3
        corners = np.take_along_axis(view[index], order[..., None], axis=1)
        weights = np.eye(3)[order]  # corner k of the rotated triangle = source corner order[k]
        a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
        t_ab = _near_crossing(a, b, near)
        t_ac = _near_crossing(a, c, near)
        p_ab = a + (b - a) * t_ab[:, None]
        p_ac = a + (c - a) * t_ac[:, None]
        w_ab = weights[:, 0] + (weights[:, 1] - weights[:, 0]) * t_ab[:, None]
        w_ac = weights[:, 0] + (weights[:, 2] - weights[:, 0]) * t_ac[:, None]
        if kept == 1:
            parts.append((np.stack([a, p_ab, p_ac], axis=1), index,
                          np.stack([weights[:, 0], w_ab, w_ac], axis=1)))
        else:
            parts.append((np.stack([b, c, p_ac], axis=1), index,
                          np.stack([weights[:, 1], weights[:, 2], w_ac], axis=1)))
            parts.append((np.stack([b, p_ac, p_ab], axis=1), index,
                          np.stack([weights[:, 1], w_ac, w_ab], axis=1)))
    if count == 0:
        return np.empty((0, 3, 3)), np.empty(0, dtype=np.int64), np.empty((0, 3, 3))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _near_crossing(start: np.ndarray, end: np.ndarray, near: float) -> np.ndarray:
    """Fraction of the way from ``start`` to ``end`` where the view depth equals ``near``."""
    start_depth, end_depth = -start[:, 2], -end[:, 2]
    return (near - start_depth) / (end_depth - start_depth)


@dataclass
class _Rows:
    triangles: np.ndarray  # indices into the clipped triangles
    column0: np.ndarray
    row0: np.ndarray
    columns: np.ndarray  # bounding box size (pixels)
    rows: np.ndarray
    box_width: int  # power of two >= every box in the bin
    box_height: int


def _bins(screen: np.ndarray, width: int, height: int):
    """Triangles grouped by the power-of-two size of the pixel centres their bounding box holds."""
    low = np.ceil(screen.min(axis=1) - 0.5)
    high = np.floor(screen.max(axis=1) - 0.5)
    low = np.maximum(low, 0)
    high = np.minimum(high, [width - 1, height - 1])
    finite = np.isfinite(screen).all(axis=(1, 2))
    visible = finite & (high >= low).all(axis=1)
    index = np.flatnonzero(visible)
    low, high = low[index].astype(np.int64), high[index].astype(np.int64)
    size = high - low + 1
    box = 1 << np.ceil(np.log2(size)).astype(np.int64)
    key = box[:, 0] * (1 << 20) + box[:, 1]
    for value in np.unique(key):
        member = key == value
        yield _Rows(index[member], low[member, 0], low[member, 1], size[member, 0], size[member, 1],
                    int(value >> 20), int(value & ((1 << 20) - 1)))


def _blocks(rows: _Rows, screen: np.ndarray):
    """Pixel-centre candidates (triangle, column, row) of a bin, at most ``_BLOCK_FRAGMENTS`` at a time."""
    per_triangle = rows.box_width * rows.box_height
    if per_triangle <= _BLOCK_FRAGMENTS:
        step = max(1, _BLOCK_FRAGMENTS // per_triangle)
        dx, dy = np.meshgrid(np.arange(rows.box_width), np.arange(rows.box_height))
        dx, dy = dx.ravel(), dy.ravel()
        for start in range(0, len(rows.triangles), step):
            part = slice(start, start + step)
            keep = (dx[None, :] < rows.columns[part, None]) & (dy[None, :] < rows.rows[part, None])
            which, offset = np.nonzero(keep)
            yield (rows.triangles[part][which], rows.column0[part][which] + dx[offset],
                   rows.row0[part][which] + dy[offset])
        return
    # Large triangles: one at a time, in bands of rows.
    band = max(1, _BLOCK_FRAGMENTS // rows.box_width)
    for k in range(len(rows.triangles)):
        columns = rows.column0[k] + np.arange(rows.columns[k])
        for first in range(0, rows.rows[k], band):
            row_range = rows.row0[k] + np.arange(first, min(first + band, rows.rows[k]))
            column, row = np.meshgrid(columns, row_range)
            yield np.full(column.size, rows.triangles[k]), column.ravel(), row.ravel()


def _resolve(block, screen, inverse_w, vertex_depth, near, far, width,
             source, corner_weights, depth, triangle, barycentric) -> None:
    """Depth-test one block of candidates into the z-buffer."""
    tri, column, row = block
    x = column + 0.5
    y = row + 0.5
    corners = screen[tri]
    x0, y0 = corners[:, 0, 0], corners[:, 0, 1]
    x1, y1 = corners[:, 1, 0], corners[:, 1, 1]
    x2, y2 = corners[:, 2, 0], corners[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    b0 = (x1 - x) * (y2 - y) - (x2 - x) * (y1 - y)
    b1 = (x2 - x) * (y0 - y) - (x0 - x) * (y2 - y)
    b2 = area - b0 - b1
    sign = np.sign(area)
    inside = (np.abs(area) > _MIN_AREA) & (b0 * sign >= 0) & (b1 * sign >= 0) & (b2 * sign >= 0)
    if not inside.any():
        return
    tri, column, row = tri[inside], column[inside], row[inside]
    weights = np.stack([b0[inside], b1[inside], b2[inside]], axis=1) / area[inside, None]
    # Screen-space weights -> weights on the surface (perspective-correct): divide by w, renormalise.
    weights *= inverse_w[tri]
    weights /= weights.sum(axis=1, keepdims=True)
    hit_depth = (weights * vertex_depth[tri]).sum(axis=1)
    ok = (hit_depth >= near) & (hit_depth <= far)
    tri, column, row, weights, hit_depth = tri[ok], column[ok], row[ok], weights[ok], hit_depth[ok]
    pixel = row * width + column
    # Nearest candidate per pixel within the block, then against the z-buffer.
    order = np.argsort(hit_depth, kind="stable")
    _, first = np.unique(pixel[order], return_index=True)
    best = order[first]
    pixel, hit_depth = pixel[best], hit_depth[best]
    closer = hit_depth < depth[pixel]
    best, pixel = best[closer], pixel[closer]
    depth[pixel] = hit_depth[closer]
    triangle[pixel] = source[tri[best]]
    barycentric[pixel] = np.einsum("nk,nkj->nj", weights[best], corner_weights[tri[best]])
