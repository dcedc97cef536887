"""Exact numpy scenes for bake tests: boxes with a UV layout, ray-traced views (no Blender)."""

from __future__ import annotations

import numpy as np

from geometry.camera import ViewCamera

OCCLUDER_COLOUR = np.array([1.0, 0.0, 0.0], dtype=np.float32)


def surface_colour(points: np.ndarray) -> np.ndarray:
    """A smooth colour field over space (so one surface point has one colour, across any UV seam).

    Red stays below 0.5 so an occluder painted pure red is recognisable."""
    p = np.asarray(points, dtype=np.float64)
    red = 0.25 + 0.2 * np.sin(1.3 * p[:, 0] + 0.7 * p[:, 2])
    green = 0.5 + 0.35 * np.sin(1.1 * p[:, 1] - 0.9 * p[:, 0] + 0.4)
    blue = 0.5 + 0.35 * np.cos(0.8 * p[:, 2] + 1.2 * p[:, 1])
    return np.stack([red, green, blue], axis=1).astype(np.float32)


def box_uv_mesh(low=(-1.0, -1.0, -1.0), high=(1.0, 1.0, 1.0), padding=0.02):
    """A box as 12 triangles: (uv, positions, normals) of shape (12, 3, 2|3|3); each face is its own
    UV island in a 3 x 2 grid (so every box edge is a UV seam), flat normals."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    centre, half = (low + high) / 2, (high - low) / 2
    uv, positions, normals = [], [], []
    cell = 0
    for axis in range(3):
        for sign in (1.0, -1.0):
            b, c = [a for a in range(3) if a != axis]
            normal = np.zeros(3)
            normal[axis] = sign
            grid = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
            corners = np.tile(centre + normal * half, (4, 1))
            corners[:, b] += (2 * grid[:, 0] - 1) * half[b]
            corners[:, c] += (2 * grid[:, 1] - 1) * half[c]
            origin = np.array([cell % 3 / 3.0, cell // 3 / 2.0]) + padding
            face_uv = origin + grid * (np.array([1 / 3.0, 1 / 2.0]) - 2 * padding)
            for triangle in ((0, 1, 2), (0, 2, 3)):
                uv.append(face_uv[list(triangle)])
                positions.append(corners[list(triangle)])
                normals.append(np.tile(normal, (3, 1)))
            cell += 1
    return np.array(uv), np.array(positions), np.array(normals)


def render_boxes(camera: ViewCamera, boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]):
    """Ray-trace axis-aligned boxes (low, high, flat colour or None for ``surface_colour``) from ``camera``:
    ((h, w, 3) image, (h, w) view depth with inf for background), top row first."""
    origin, direction = camera.pixel_rays()
    origin = origin.reshape(-1, 3)
    direction = direction.reshape(-1, 3)
    nearest = np.full(len(origin), np.inf)
    image = np.zeros((len(origin), 3), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for low, high, colour in boxes:
            t1 = (np.asarray(low) - origin) / direction
            t2 = (np.asarray(high) - origin) / direction
            t_enter = np.nanmax(np.minimum(t1, t2), axis=1)
            t_exit = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (t_enter <= t_exit) & (t_enter > 0) & (t_enter < nearest)
            nearest[hit] = t_enter[hit]
            points = origin[hit] + direction[hit] * t_enter[hit, None]
            image[hit] = surface_colour(points) if colour is None else colour
    depth = nearest * (direction @ camera.forward)
    shape = (camera.height, camera.width)
    return image.reshape(shape + (3,)), np.where(np.isfinite(depth), depth, np.inf).reshape(shape).astype(np.float32)


def blocked(eye: np.ndarray, points: np.ndarray, low, high) -> np.ndarray:
    """(N,) bool: the segment from ``eye`` to each point passes through the box (low, high)."""
    direction = np.asarray(points, dtype=np.float64) - eye
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (np.asarray(low) - eye) / direction
        t2 = (np.asarray(high) - eye) / direction
        t_enter = np.nanmax(np.minimum(t1, t2), axis=1)
        t_exit = np.nanmin(np.maximum(t1, t2), axis=1)
    return (t_enter <= t_exit) & (t_enter > 0) & (t_enter < 1)
