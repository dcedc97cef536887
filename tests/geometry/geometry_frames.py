"""Camera matrices built the way Blender's ``calc_matrix_camera`` builds them (checked against it in
tests/blender/test_geometry.py), and a brute-force ray caster to check the rasteriser against."""

from __future__ import annotations

import numpy as np


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera -> world matrix of a camera at ``eye`` looking at ``target`` (Blender cameras look down -Z)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-9:  # looking along ``up``: any right angle will do
        right = np.cross([1.0, 0.0, 0.0] if abs(back[0]) < 0.9 else [0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, true_up, back, eye
    return matrix


def perspective(lens: float, sensor: float, width: int, height: int, near: float = 0.1, far: float = 100.0,
                shift_x: float = 0.0, shift_y: float = 0.0) -> np.ndarray:
    """Blender's perspective projection, sensor fit AUTO (the larger side spans the sensor)."""
    half = 0.5 * sensor / lens * near
    half_x, half_y = (half, half * height / width) if width >= height else (half * width / height, half)
    span = 2.0 * half
    left, right = -half_x + shift_x * span, half_x + shift_x * span
    bottom, top = -half_y + shift_y * span, half_y + shift_y * span
    matrix = np.zeros((4, 4))
    matrix[0, 0] = 2 * near / (right - left)
    matrix[0, 2] = (right + left) / (right - left)
    matrix[1, 1] = 2 * near / (top - bottom)
    matrix[1, 2] = (top + bottom) / (top - bottom)
    matrix[2, 2] = -(far + near) / (far - near)
    matrix[2, 3] = -2 * far * near / (far - near)
    matrix[3, 2] = -1.0
    return matrix


def orthographic(scale: float, width: int, height: int, near: float = 0.1, far: float = 100.0) -> np.ndarray:
    """Blender's orthographic projection: ``scale`` spans the larger side."""
    half_x, half_y = (scale / 2, scale / 2 * height / width) if width >= height else (scale / 2 * width / height, scale / 2)
    matrix = np.eye(4)
    matrix[0, 0] = 1 / half_x
    matrix[1, 1] = 1 / half_y
    matrix[2, 2] = -2 / (far - near)
    matrix[2, 3] = -(far + near) / (far - near)
    return matrix


def quad(centre, u, v) -> np.ndarray:
    """Two triangles of the parallelogram centre +- u +- v, (2, 3, 3)."""
    c, u, v = (np.asarray(a, dtype=np.float64) for a in (centre, u, v))
    a, b, cc, d = c - u - v, c + u - v, c + u + v, c - u + v
    return np.array([[a, b, cc], [a, cc, d]])


def ray_cast_depth(origins: np.ndarray, directions: np.ndarray, forward: np.ndarray, triangles: np.ndarray,
                   near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: view depth and triangle index of the nearest hit per ray (inf / -1 when none)."""
    o = origins.reshape(-1, 3)
    d = directions.reshape(-1, 3)
    best_depth = np.full(len(o), np.inf)
    best = np.full(len(o), -1)
    cos = d @ forward
    for index, (a, b, c) in enumerate(triangles):
        e1, e2 = b - a, c - a
        p = np.cross(d, e2)
        det = p @ e1
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = o - a
        bu = (s * p).sum(axis=1) * inv
        q = np.cross(s, e1)
        bv = (d * q).sum(axis=1) * inv
        t = (q @ e2) * inv
        depth = t * cos
        hit = ok & (bu >= -1e-9) & (bv >= -1e-9) & (bu + bv <= 1 + 1e-9) & (depth >= near) & (depth <= far)
        closer = hit & (depth < best_depth)
        best_depth[closer] = depth[closer]
        best[closer] = index
    return best_depth, best
