"""A camera frame as Blender renders it: world matrix + ``calc_matrix_camera`` projection.

Conventions (one place for all of them):

- ``projection`` is exactly what ``camera.calc_matrix_camera(depsgraph, x=width, y=height,
  scale_x=pixel_aspect_x, scale_y=pixel_aspect_y)`` returns: OpenGL clip space, the camera
  looking down its local -Z with +Y up, sensor fit, shift and orthographic scale included.
- Pixel coordinates are continuous, ``x`` from the left edge (0) to the right edge (width),
  ``y`` from the TOP edge (0) to the bottom edge (height): pixel (row r, column c) of an
  array stored top row first covers ``[c, c+1) x [r, r+1)`` and its centre is (c+0.5, r+0.5).
  Blender images store rows bottom-up: flip with ``np.flipud`` when writing them.
- UVs (the ``PROJECT`` target's UV map) put the camera frame on the 0..1 square with v up,
  so v = 1 - y / height, which lines up with Blender's bottom-up image rows.
- View depth is the distance along the camera's viewing axis (-Z of the camera), what
  Cycles' "View Z Depth" gives, for perspective and orthographic cameras alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Points on the camera plane have no perspective projection; keep them finite.
_MIN_W = 1e-12


@dataclass(frozen=True)
class ViewCamera:
    """One camera at one image size."""

    world_matrix: np.ndarray  # (4, 4) camera -> world (Blender's ``camera.matrix_world``), no scale expected
    projection: np.ndarray  # (4, 4) view -> clip, from ``calc_matrix_camera`` at width x height
    width: int
    height: int
    ortho: bool

    def __post_init__(self) -> None:
        world = np.asarray(self.world_matrix, dtype=np.float64)
        projection = np.asarray(self.projection, dtype=np.float64)
        if world.shape != (4, 4):
            raise ValueError(f"world_matrix must be 4x4, got {world.shape}")
        if projection.shape != (4, 4):
            raise ValueError(f"projection must be 4x4, got {projection.shape}")
        if int(self.width) < 1 or int(self.height) < 1:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "world_matrix", world)
        object.__setattr__(self, "projection", projection)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "ortho", bool(self.ortho))

    @property
    def view_matrix(self) -> np.ndarray:
        """World -> camera (view) space."""
        return np.linalg.inv(self.world_matrix)

    @property
    def location(self) -> np.ndarray:
        """The camera's position in world space."""
        return self.world_matrix[:3, 3].copy()

    @property
    def clip_range(self) -> tuple[float, float]:
        """(near, far) view depths the projection keeps (the camera's clip start and end)."""
        return self.view_depth_of_ndc(-1.0), self.view_depth_of_ndc(1.0)

    def view_depth_of_ndc(self, ndc_z: float | np.ndarray) -> float | np.ndarray:
        """The view depth whose normalised device z is ``ndc_z`` (Blender's matrices have no x/y in rows 2-3)."""
        p = self.projection
        view_z = (ndc_z * p[3, 3] - p[2, 3]) / (p[2, 2] - ndc_z * p[3, 2])
        return -view_z

    def to_view(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world positions -> (N, 3) camera-space positions (camera looks down -Z)."""
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        view = self.view_matrix
        return points @ view[:3, :3].T + view[:3, 3]

    def clip_from_view(self, points_view: np.ndarray) -> np.ndarray:
        """(N, 3) camera-space positions -> (N, 4) clip-space coordinates."""
        points = np.asarray(points_view, dtype=np.float64).reshape(-1, 3)
        return points @ self.projection[:, :3].T + self.projection[:, 3]

    def ndc(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world positions -> (N, 2) normalised device x, y (-1..1 across the frame, y up)."""
        clip = self.clip_from_view(self.to_view(points_world))
        w = clip[:, 3:4]
        w = np.where(np.abs(w) < _MIN_W, _MIN_W, w)
        return clip[:, :2] / w

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world positions -> ((N, 2) pixel x, y with y down from the top edge, (N,) view depth).

        Points behind the camera get a negative depth (their pixel position is meaningless).
        """
        depth = -self.to_view(points_world)[:, 2]
        return self.pixels_from_ndc(self.ndc(points_world)), depth

    def pixels_from_ndc(self, ndc_xy: np.ndarray) -> np.ndarray:
        """(N, 2) normalised device x, y -> (N, 2) pixel x, y (y down from the top edge)."""
        ndc_xy = np.asarray(ndc_xy, dtype=np.float64)
        pixel = np.empty_like(ndc_xy)
        pixel[:, 0] = (ndc_xy[:, 0] + 1.0) * 0.5 * self.width
        pixel[:, 1] = (1.0 - ndc_xy[:, 1]) * 0.5 * self.height
        return pixel

    def uv(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world positions -> (N, 2) float32 UVs where the camera frame is the 0..1 square (v up)."""
        return ((self.ndc(points_world) + 1.0) * 0.5).astype(np.float32)

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """One ray per pixel centre: ((height, width, 3) origins, (height, width, 3) unit directions), top row first.

        The origin is where the pixel's ray crosses the camera's plane (view z = 0): the
        camera's location for a perspective camera, a point on the sensor plane for an
        orthographic one. A point at view depth ``d`` on the ray is ``origin + t * direction``
        with ``t = d / (direction . camera forward)``.
        """
        columns = (np.arange(self.width, dtype=np.float64) + 0.5) / self.width * 2.0 - 1.0
        rows = 1.0 - (np.arange(self.height, dtype=np.float64) + 0.5) / self.height * 2.0
        ndc_x, ndc_y = np.meshgrid(columns, rows)
        near = self._unproject(ndc_x, ndc_y, -1.0)
        far = self._unproject(ndc_x, ndc_y, 1.0)
        direction = far - near
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        # Slide the near point back along its ray to the camera plane (view z = 0).
        forward = self.forward
        near_depth = (near - self.location) @ forward
        origin = near - direction * (near_depth / (direction @ forward))[..., None]
        return origin, direction

    @property
    def forward(self) -> np.ndarray:
        """The unit viewing direction (the camera's local -Z) in world space."""
        axis = -self.world_matrix[:3, 2]
        return axis / np.linalg.norm(axis)

    def _unproject(self, ndc_x: np.ndarray, ndc_y: np.ndarray, ndc_z: float) -> np.ndarray:
        clip = np.stack([ndc_x, ndc_y, np.full_like(ndc_x, ndc_z), np.ones_like(ndc_x)], axis=-1)
        world = clip @ np.linalg.inv(self.projection @ self.view_matrix).T
        return world[..., :3] / world[..., 3:4]
