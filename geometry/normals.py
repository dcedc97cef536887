"""Per-pixel surface normals in camera space from a rasterised view."""

from __future__ import annotations

import numpy as np

from .camera import ViewCamera
from .raster import SurfaceHits


def view_normals(camera: ViewCamera, triangles_world: np.ndarray, hits: SurfaceHits,
                 corner_normals_world: np.ndarray | None = None) -> np.ndarray:
    """(height, width, 3) float32 unit normals in Blender camera space (x right, y up, z towards the viewer).

    ``corner_normals_world`` (n, 3, 3): the mesh's shading normals per triangle corner (smooth
    and auto-smooth shading, custom normals); None = flat face normals. Like a render, a face
    seen from behind shows its back side: normals are flipped to face the camera. Pixels
    where nothing is hit are 0.
    """
    triangles = np.asarray(triangles_world, dtype=np.float64)
    normals = np.zeros((camera.height, camera.width, 3), dtype=np.float32)
    covered = hits.covered
    index = hits.triangle[covered]
    if not len(index):
        return normals
    used, index = np.unique(index, return_inverse=True)
    corners = triangles[used]
    linear = camera.world_matrix[:3, :3]
    # Normals transform by the inverse transpose of world -> view, i.e. by the camera's own rotation transposed.
    geometric = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) @ linear
    # Which side of its plane the viewer is on is the same over a whole triangle.
    if camera.ortho:
        facing = geometric[:, 2]
    else:
        facing = -np.einsum("nj,nj->n", geometric, camera.to_view(corners[:, 0]))
    flip = np.where(facing < 0, -1.0, 1.0)
    if corner_normals_world is None:
        shading = (geometric * flip[:, None])[index]
    else:
        corner_normals = np.asarray(corner_normals_world, dtype=np.float64)[used] @ linear
        weights = hits.barycentric[covered].astype(np.float64)
        shading = np.einsum("nk,nkj->nj", weights, corner_normals[index]) * flip[index, None]
    length = np.linalg.norm(shading, axis=1, keepdims=True)
    normals[covered] = shading / np.where(length > 0, length, 1.0)
    return normals
