"""Where to look from: cameras placed around objects, and Blender's camera projection in numpy.

``place_views`` puts ``count`` cameras on a sphere around the objects' bounding sphere: a
ring a little above the horizon, plus a top and a bottom view as the count allows; the
front view (Blender's: from -Y looking along +Y) comes first, then each next one is the
view that sees the most surface not yet seen well. With fewer than 4 views (no top or
bottom in the ring) a top or bottom view replaces the front when it sees more of the
surface well (a floor, a plane: 1-3 views include the top view). Every camera frames the
bounding sphere with a small margin. ``outward_normals`` turns flipped faces outwards
for this count (faces are two-sided in the bake).

``projection_matrix`` reproduces ``Object.calc_matrix_camera`` for a camera with
sensor fit AUTO and no shift (what auto-placed views use), so no camera datablock is
ever needed to place views (tests/blender checks it against Blender's own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import ViewCamera

# Elevation of the ring of views above the horizon: sees the tops of things a little.
RING_ELEVATION_DEGREES = 15.0
# A surface point counts as seen well by a view within this angle of its normal.
_WELL_SEEN_DEGREES = 60.0
_PROXY_SAMPLES = 2000


@dataclass(frozen=True)
class ViewSettings:
    """Everything a recipe needs to rebuild a view's camera (the contract's `views` entry)."""

    world_matrix: np.ndarray  # (4, 4) camera -> world, as Blender's matrix_world
    ortho: bool
    lens: float  # mm, perspective
    ortho_scale: float  # world units across the larger frame side, orthographic
    sensor_width: float  # mm
    clip_start: float
    clip_end: float
    width: int
    height: int

    def camera(self) -> ViewCamera:
        return ViewCamera(self.world_matrix, projection_matrix(self), self.width, self.height, self.ortho)

    def recipe(self) -> dict:
        """The recipe's per-view entry (names from ARCHITECTURE.md)."""
        return {
            "matrix_world": [[float(v) for v in row] for row in self.world_matrix],
            "projection": "ORTHO" if self.ortho else "PERSP",
            "lens": float(self.lens),
            "ortho_scale": float(self.ortho_scale),
            "sensor_width": float(self.sensor_width),
            "sensor_fit": "AUTO",
            "clip_start": float(self.clip_start),
            "clip_end": float(self.clip_end),
            "width": int(self.width),
            "height": int(self.height),
        }


def projection_matrix(view: ViewSettings) -> np.ndarray:
    """What ``calc_matrix_camera(x=width, y=height)`` gives (sensor fit AUTO, no shift, square pixels)."""
    width, height = view.width, view.height
    near, far = view.clip_start, view.clip_end
    if view.ortho:
        size = view.ortho_scale
    else:
        size = view.sensor_width * near / view.lens
    # AUTO fit: the sensor spans the larger side of the frame.
    pixel = size / max(width, height)
    right, top = 0.5 * width * pixel, 0.5 * height * pixel
    matrix = np.zeros((4, 4), dtype=np.float64)
    if view.ortho:
        matrix[0, 0] = 1.0 / right
        matrix[1, 1] = 1.0 / top
        matrix[2, 2] = -2.0 / (far - near)
        matrix[2, 3] = -(far + near) / (far - near)
        matrix[3, 3] = 1.0
    else:
        matrix[0, 0] = near / right
        matrix[1, 1] = near / top
        matrix[2, 2] = -(far + near) / (far - near)
        matrix[2, 3] = -2.0 * far * near / (far - near)
        matrix[3, 2] = -1.0
    return matrix


def bounding_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, radius) of a sphere around (N, 3) points: the bounding box's centre, the farthest point."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        raise ValueError("points must hold at least one point")
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    radius = float(np.sqrt(((points - centre) ** 2).sum(axis=1).max()))
    return centre, max(radius, 1e-6)


def view_directions(count: int) -> np.ndarray:
    """(count, 3) unit directions from the centre to each camera: the ring (front first), then top, bottom."""
    if not 1 <= count <= 64:
        raise ValueError(f"count must be between 1 and 64, got {count}")
    caps = 0 if count < 4 else (1 if count < 6 else 2)
    ring = count - caps
    azimuth = np.radians(-90.0) + 2.0 * np.pi * np.arange(ring) / ring  # -90 deg: on -Y, the front
    elevation = np.radians(RING_ELEVATION_DEGREES)
    directions = np.stack([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                           np.full(ring, np.sin(elevation))], axis=1)
    caps_directions = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])[:caps]
    return np.concatenate([directions, caps_directions])


def order_by_coverage(directions: np.ndarray, normals: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``directions``: the first one, then greedily the one that sees the most surface
    (``normals``, optionally area ``weights``) not yet seen well by the ones before."""
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    weights = np.ones(len(normals)) if weights is None else np.asarray(weights, dtype=np.float64)
    well_seen = (normals @ np.asarray(directions, dtype=np.float64).T) > np.cos(np.radians(_WELL_SEEN_DEGREES))
    order = [0]
    covered = well_seen[:, 0].copy()
    remaining = list(range(1, len(directions)))
    while remaining:
        gains = [(weights * (well_seen[:, i] & ~covered)).sum() for i in remaining]
        best = remaining[int(np.argmax(gains))]  # ties go to the earlier (ring order)
        order.append(best)
        covered |= well_seen[:, best]
        remaining.remove(best)
    return np.array(order)


def place_views(centre: np.ndarray, radius: float, count: int, width: int, height: int, *,
                ortho: bool = False, lens: float = 50.0, sensor_width: float = 36.0, margin: float = 0.1,
                normals: np.ndarray | None = None, weights: np.ndarray | None = None) -> list[ViewSettings]:
    """``count`` cameras looking at the sphere (``centre``, ``radius``), each framing it with ``margin``
    (a fraction of the radius) to spare; ordered front first, then by coverage of the surface ``normals``
    (area ``weights``) - without them, of a sphere's."""
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if lens <= 0 or sensor_width <= 0:
        raise ValueError(f"lens and sensor_width must be positive, got {lens} and {sensor_width}")
    centre = np.asarray(centre, dtype=np.float64)
    directions = view_directions(count)
    if normals is None:
        normals = _fibonacci_sphere(_PROXY_SAMPLES)
    elif count < 4:
        directions = _with_caps(directions, normals, weights, count)
    directions = directions[order_by_coverage(directions, normals, weights)]
    framed = radius * (1.0 + margin)
    aspect = min(width, height) / max(width, height)
    if ortho:
        ortho_scale = 2.0 * framed / aspect
        distance = 2.0 * framed
    else:
        ortho_scale = 0.0
        half_angle = np.arctan(0.5 * sensor_width / lens * aspect)  # of the frame's smaller side
        distance = framed / np.sin(half_angle)
    clip_start = max(distance - 2.0 * framed, 1e-3 * distance) if not ortho else 1e-3 * distance
    clip_end = distance + 2.0 * framed
    return [
        ViewSettings(world_matrix=look_at(centre + distance * direction, centre), ortho=ortho, lens=lens,
                     ortho_scale=ortho_scale, sensor_width=sensor_width, clip_start=clip_start,
                     clip_end=clip_end, width=int(width), height=int(height))
        for direction in directions
    ]


def _with_caps(ring: np.ndarray, normals: np.ndarray, weights: np.ndarray | None, count: int) -> np.ndarray:
    """The ring of ``count`` < 4 views, or - when the top or bottom view sees more surface well than the front
    (a flat object) - that view first, then the ring's best by coverage."""
    caps = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    candidates = np.concatenate([caps, ring])
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    weights = np.ones(len(normals)) if weights is None else np.asarray(weights, dtype=np.float64)
    seen = weights @ ((normals @ candidates.T) > np.cos(np.radians(_WELL_SEEN_DEGREES)))
    if seen[:2].max() <= seen[2]:
        return ring
    first, other = (0, 1) if seen[0] >= seen[1] else (1, 0)
    candidates = np.concatenate([caps[[first]], ring, caps[[other]]])
    return candidates[order_by_coverage(candidates, normals, weights)[:count]]


def outward_normals(normals: np.ndarray, centroids: np.ndarray, centre: np.ndarray,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) face normals of a mesh whose faces mostly point towards ``centre`` (flipped normals) turned around,
    for ``place_views`` (the bake sees faces from both sides); faces through the centre (a plane) point up (+Z)."""
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    weights = np.ones(len(normals)) if weights is None else np.asarray(weights, dtype=np.float64)
    offset = np.asarray(centroids, dtype=np.float64) - centre
    outward = np.einsum("ij,ij->i", normals, offset)
    through = np.abs(outward) <= 1e-6 * max(float(np.abs(offset).max(initial=0.0)), 1e-12)
    flipped = weights[~through] @ np.sign(outward[~through]) < 0
    sign = np.where(through, np.where(normals[:, 2] < 0, -1.0, 1.0), -1.0 if flipped else 1.0)
    return normals * sign[:, None]


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A camera -> world matrix at ``eye`` looking at ``target`` (local -Z forward), world Z up
    (world Y up for views straight down or up, as Blender's top and bottom views)."""
    forward = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    up_hint = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up_hint)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, up, -forward, eye
    return matrix


def _fibonacci_sphere(count: int) -> np.ndarray:
    index = np.arange(count) + 0.5
    z = 1.0 - 2.0 * index / count
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index
    ring = np.sqrt(1.0 - z * z)
    return np.stack([ring * np.cos(angle), ring * np.sin(angle), z], axis=1)
