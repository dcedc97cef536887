"""A vectorised numpy z-buffer: which triangle each pixel centre sees, how far, and where on it.

Why a rasteriser and not ray casting or a render: it is pure numpy (the same headless and
in the UI, no GPU context, no render settings touched), exact at pixel centres, and fast
enough (see ``bench/geometry_passes.py``). Triangles are binned by the power-of-two size of
their pixel bounding box, so each bin tests a dense (triangles x box) block of pixel
centres at once by broadcasting, without per-pixel gathers; large boxes are cut into
pieces of bounded memory.

Rules (those of a render): a pixel sees the nearest surface whose triangle contains its
centre (edges inclusive) between the camera's clip start and clip end; triangles crossing
the clip start are clipped there; both sides of a face are visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import ViewCamera

# Pixel centres tested at once; bounds the temporary arrays (a few float64 arrays of this length).
_BLOCK_FRAGMENTS = 1 << 20
_MIN_AREA = 1e-12
# Pixel centres exactly on an edge shared by two triangles must not fall through both.
_EDGE_TOLERANCE = 1e-9


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
    # Per pixel: the winning clipped triangle and the weights on it; mapped to the source triangles once, at the end.
    clipped = np.full(width * height, -1, dtype=np.int64)
    local_weights = np.zeros((width * height, 3), dtype=np.float64)

    near, far = camera.clip_range
    view = camera.to_view(triangles.reshape(-1, 3)).reshape(-1, 3, 3)
    view, source, corner_weights = _clip_near(view, near)
    if len(view):
        clip = camera.clip_from_view(view.reshape(-1, 3)).reshape(-1, 3, 4)
        inverse_w = 1.0 / clip[..., 3]
        screen = camera.pixels_from_ndc((clip[..., :2] * inverse_w[..., None]).reshape(-1, 2)).reshape(-1, 3, 2)
        vertex_depth = -view[..., 2]
        for bin_ in _bins(screen, width, height):
            _resolve_bin(bin_, screen, inverse_w, vertex_depth, near, far, width, depth, clipped, local_weights)

    triangle = np.full(width * height, -1, dtype=np.int32)
    barycentric = np.zeros((width * height, 3), dtype=np.float32)
    hit = np.flatnonzero(clipped >= 0)
    if len(hit):
        winners = clipped[hit]
        triangle[hit] = source[winners]
        barycentric[hit] = np.einsum("nk,nkj->nj", local_weights[hit], corner_weights[winners])
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


def _bins(screen: np.ndarray, width: int, height: int):
    """Triangles grouped by the power-of-two size of the box of pixel centres they may cover.

    Yields (triangle indices, first column, first row, box columns, box rows, bin width, bin height).
    """
    xs, ys = screen[..., 0], screen[..., 1]
    low_x = np.maximum(np.ceil(np.minimum(np.minimum(xs[:, 0], xs[:, 1]), xs[:, 2]) - 0.5), 0)
    low_y = np.maximum(np.ceil(np.minimum(np.minimum(ys[:, 0], ys[:, 1]), ys[:, 2]) - 0.5), 0)
    high_x = np.minimum(np.floor(np.maximum(np.maximum(xs[:, 0], xs[:, 1]), xs[:, 2]) - 0.5), width - 1)
    high_y = np.minimum(np.floor(np.maximum(np.maximum(ys[:, 0], ys[:, 1]), ys[:, 2]) - 0.5), height - 1)
    index = np.flatnonzero((high_x >= low_x) & (high_y >= low_y))  # NaN compares False: dropped too
    low_x, low_y = low_x[index].astype(np.int64), low_y[index].astype(np.int64)
    columns = high_x[index].astype(np.int64) - low_x + 1
    rows = high_y[index].astype(np.int64) - low_y + 1
    box_x = 1 << np.ceil(np.log2(columns)).astype(np.int64)
    box_y = 1 << np.ceil(np.log2(rows)).astype(np.int64)
    key = box_x * (1 << 20) + box_y
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    for first, last in zip(starts, np.r_[starts[1:], len(key)]):
        member = order[first:last]
        yield (index[member], low_x[member], low_y[member], columns[member], rows[member],
               int(key[first] >> 20), int(key[first] & ((1 << 20) - 1)))


def _resolve_bin(bin_, screen, inverse_w, vertex_depth, near, far, width, depth, clipped, local_weights) -> None:
    """Test every pixel centre of the bin's boxes (dense, broadcast per triangle) and depth-test the hits."""
    index, column0, row0, columns, rows, box_x, box_y = bin_
    dy, dx = np.divmod(np.arange(box_x * box_y), box_x)
    # Edge functions as planes over the box, relative to its first pixel centre (small numbers, exact enough):
    # weight_i(dx, dy) = constant_i + slope_x_i * dx + slope_y_i * dy, normalised by the signed area.
    corner = screen[index] - np.stack([column0 + 0.5, row0 + 0.5], axis=1)[:, None, :]
    x, y = corner[..., 0], corner[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    usable = np.abs(area) > _MIN_AREA
    area = np.where(usable, area, 1.0)
    planes = []
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        planes.append(((x[:, j] * y[:, k] - x[:, k] * y[:, j]) / area,
                       (y[:, j] - y[:, k]) / area,
                       (x[:, k] - x[:, j]) / area))
    per_triangle = box_x * box_y
    step = max(1, _BLOCK_FRAGMENTS // per_triangle)
    piece = min(per_triangle, _BLOCK_FRAGMENTS)
    for start in range(0, len(index), step):
        part = slice(start, start + step)
        for offset in range(0, per_triangle, piece):
            ox, oy = dx[offset:offset + piece][None, :], dy[offset:offset + piece][None, :]
            inside = (ox < columns[part, None]) & (oy < rows[part, None]) & usable[part, None]
            weights = []
            for constant, slope_x, slope_y in planes:
                weight = constant[part, None] + slope_x[part, None] * ox + slope_y[part, None] * oy
                inside &= weight >= -_EDGE_TOLERANCE
                weights.append(weight)
            which, at = np.nonzero(inside)
            if not len(which):
                continue
            local = np.stack([w[which, at] for w in weights], axis=1)
            tri = index[part][which]
            pixel = (row0[part][which] + oy[0, at]) * width + column0[part][which] + ox[0, at]
            _depth_test(tri, pixel, local, inverse_w, vertex_depth, near, far, depth, clipped, local_weights)


def _depth_test(tri, pixel, local, inverse_w, vertex_depth, near, far, depth, clipped, local_weights) -> None:
    # Screen-space weights -> weights on the surface (perspective-correct): divide by w, renormalise.
    weights = local * inverse_w[tri]
    weights /= weights.sum(axis=1, keepdims=True)
    hit_depth = (weights * vertex_depth[tri]).sum(axis=1)
    ok = (hit_depth >= near) & (hit_depth <= far)
    if not ok.all():
        tri, pixel, weights, hit_depth = tri[ok], pixel[ok], weights[ok], hit_depth[ok]
    np.minimum.at(depth, pixel, hit_depth)
    # Everything that reached the buffer's value wins (ties: any of them); later blocks overwrite losers.
    won = hit_depth <= depth[pixel]
    clipped[pixel[won]] = tri[won]
    local_weights[pixel[won]] = weights[won]
