"""Normals seen by a camera -> the tangent-space normal map Blender's Normal Map node reads (issue 30).

A normals model (Marigold) paints each pixel's surface orientation in the *camera frame*
(X right, Y up, Z towards the viewer: Blender's camera axes). A texture of real geometry
(Whole Object, PROJECT) needs it in the mesh's *tangent space* for the UV map the texture
uses, per texel, exactly as Blender's Normal Map node (Tangent Space) decodes it:

    T, N, s  = the corner tangents, shading normals and bitangent signs (MikkTSpace,
               ``Mesh.calc_tangents``), interpolated across the triangle, object space
    B        = s * cross(N, T)
    c        = 2 * colour - 1
    normal   = normalise(c.x * T + c.y * B + c.z * N)   (object space; to world by the
               inverse transpose of the object's matrix)

(Cycles' ``svm_node_normal_map``; Blender's own tangent bake inverts the same formula.) So
a world normal n goes back by n_object ~ M^T n and c ~ [T B N]^-1 n_object, normalised. A
face that looks exactly as its geometry gives c = (0, 0, 1): colour (0.5, 0.5, 1.0).

numpy only; arrays of points, no images: the callers (Whole Object's bake, PROJECT's pixels)
say which triangle and where on it each texel lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Below this the 3x3 frame is taken as degenerate (a zero-area UV triangle: no tangent).
_MIN_DETERMINANT = 1e-12
_MIN_LENGTH = 1e-12


@dataclass(frozen=True)
class TangentFrames:
    """Per triangle corner, in the mesh's object space: MikkTSpace tangent (T, 3, 3), bitangent sign (T, 3),
    shading normal (T, 3, 3) (the corner normal of a smooth face, the face normal at all three corners of a
    flat one), and ``linear``: the object's matrix without translation (object -> world), (3, 3), or
    (T, 3, 3) per triangle when the triangles come from several objects."""

    tangent: np.ndarray
    sign: np.ndarray
    normal: np.ndarray
    linear: np.ndarray

    def __post_init__(self) -> None:
        tangent = np.asarray(self.tangent, dtype=np.float64)
        sign = np.asarray(self.sign, dtype=np.float64)
        normal = np.asarray(self.normal, dtype=np.float64)
        linear = np.asarray(self.linear, dtype=np.float64)
        if tangent.ndim != 3 or tangent.shape[1:] != (3, 3):
            raise ValueError(f"tangent must have shape (T, 3, 3), got {tangent.shape}")
        if sign.shape != tangent.shape[:2]:
            raise ValueError(f"sign must have shape {tangent.shape[:2]} like tangent, got {sign.shape}")
        if normal.shape != tangent.shape:
            raise ValueError(f"normal must have shape {tangent.shape} like tangent, got {normal.shape}")
        if linear.shape == (3, 3):
            linear = np.broadcast_to(linear, tangent.shape)
        if linear.shape != tangent.shape:
            raise ValueError(f"linear must be the object's 3x3 matrix or one per triangle, got {linear.shape}")
        object.__setattr__(self, "tangent", tangent)
        object.__setattr__(self, "sign", sign)
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "linear", linear)


def camera_to_world(normals_camera: np.ndarray, camera_world_matrix: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame normals -> world normals: the camera's rotation (its matrix's scale removed)."""
    matrix = np.asarray(camera_world_matrix, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"camera_world_matrix must be 4x4, got {matrix.shape}")
    rotation = matrix[:3, :3] / np.maximum(np.linalg.norm(matrix[:3, :3], axis=0), _MIN_LENGTH)
    return np.asarray(normals_camera, dtype=np.float64) @ rotation.T


def barycentric_of_points(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N, 3) weights of ``points`` (N, 3) on their triangles ``corners`` (N, 3, 3), points taken onto the
    triangle's plane; a degenerate (zero-area) triangle gives its first corner."""
    points = np.asarray(points, dtype=np.float64)
    corners = np.asarray(corners, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    if corners.shape != (len(points), 3, 3):
        raise ValueError(f"corners must have shape ({len(points)}, 3, 3), got {corners.shape}")
    edge1 = corners[:, 1] - corners[:, 0]
    edge2 = corners[:, 2] - corners[:, 0]
    offset = points - corners[:, 0]
    d11 = np.einsum("ij,ij->i", edge1, edge1)
    d12 = np.einsum("ij,ij->i", edge1, edge2)
    d22 = np.einsum("ij,ij->i", edge2, edge2)
    o1 = np.einsum("ij,ij->i", offset, edge1)
    o2 = np.einsum("ij,ij->i", offset, edge2)
    denominator = d11 * d22 - d12 * d12
    degenerate = denominator <= _MIN_DETERMINANT * np.maximum(d11 * d22, _MIN_LENGTH)
    safe = np.where(degenerate, 1.0, denominator)
    w1 = np.where(degenerate, 0.0, (d22 * o1 - d12 * o2) / safe)
    w2 = np.where(degenerate, 0.0, (d11 * o2 - d12 * o1) / safe)
    return np.stack([1.0 - w1 - w2, w1, w2], axis=1)


def world_to_tangent(world_normals: np.ndarray, triangle: np.ndarray, barycentric: np.ndarray,
                     frames: TangentFrames) -> np.ndarray:
    """(N, 3) unit tangent-space normals (Normal Map node's c = 2 * colour - 1) of (N, 3) world normals at the
    points ``barycentric`` (N, 3) of ``triangle`` (N,) (indices into ``frames``).

    A point whose frame is degenerate (a triangle with no UV area has no tangent) gets (0, 0, 1): the surface
    as its geometry is. Zero normals (nothing seen) give (0, 0, 1) too.
    """
    world = np.asarray(world_normals, dtype=np.float64)
    triangle = np.asarray(triangle, dtype=np.int64)
    weights = np.asarray(barycentric, dtype=np.float64)
    if world.ndim != 2 or world.shape[1] != 3:
        raise ValueError(f"world_normals must have shape (N, 3), got {world.shape}")
    if triangle.shape != (len(world),) or weights.shape != (len(world), 3):
        raise ValueError(f"triangle (N,) and barycentric (N, 3) must match world_normals' N = {len(world)}; "
                         f"got {triangle.shape} and {weights.shape}")
    tangent = np.einsum("nk,nkj->nj", weights, frames.tangent[triangle])
    normal = np.einsum("nk,nkj->nj", weights, frames.normal[triangle])
    sign = np.einsum("nk,nk->n", weights, frames.sign[triangle])
    bitangent = sign[:, None] * np.cross(normal, tangent)  # the interpolated sign, as Cycles uses it
    # Row vector times the matrix: n_object = M^T n_world (the inverse of the normals' inverse transpose).
    object_normals = np.einsum("nj,njk->nk", world, frames.linear[triangle])
    basis = np.stack([tangent, bitangent, normal], axis=2)  # columns T, B, N
    determinant = np.linalg.det(basis)
    usable = np.abs(determinant) > _MIN_DETERMINANT
    result = np.zeros_like(world)
    result[:, 2] = 1.0
    if usable.any():
        solved = np.linalg.solve(basis[usable], object_normals[usable][:, :, None])[:, :, 0]
        length = np.linalg.norm(solved, axis=1)
        seen = length > _MIN_LENGTH
        rows = np.flatnonzero(usable)[seen]
        result[rows] = solved[seen] / length[seen, None]
    return result


def encode_normal_map(tangent_normals: np.ndarray) -> np.ndarray:
    """Tangent-space unit normals (..., 3) -> the Normal Map node's colours 0..1 (float32, Non-Color data)."""
    return np.clip(np.asarray(tangent_normals, dtype=np.float32) * 0.5 + 0.5, 0.0, 1.0)


def decode_normal_map(colours: np.ndarray) -> np.ndarray:
    """The Normal Map node's colours -> unnormalised tangent-space vectors c = 2 * colour - 1."""
    return np.asarray(colours, dtype=np.float64) * 2.0 - 1.0


def tangent_to_world(colours: np.ndarray, triangle: np.ndarray, barycentric: np.ndarray,
                     frames: TangentFrames) -> np.ndarray:
    """What Blender's Normal Map node shows for ``colours`` (N, 3) at those points: unit world normals.

    The forward formula of the module docstring (the check of ``world_to_tangent``, and what a test
    compares with a render)."""
    c = decode_normal_map(colours)
    weights = np.asarray(barycentric, dtype=np.float64)
    triangle = np.asarray(triangle, dtype=np.int64)
    tangent = np.einsum("nk,nkj->nj", weights, frames.tangent[triangle])
    normal = np.einsum("nk,nkj->nj", weights, frames.normal[triangle])
    sign = np.einsum("nk,nk->n", weights, frames.sign[triangle])
    bitangent = sign[:, None] * np.cross(normal, tangent)
    object_normal = c[:, :1] * tangent + c[:, 1:2] * bitangent + c[:, 2:] * normal
    # by the inverse transpose, as row vectors
    world = np.einsum("nj,njk->nk", object_normal, np.linalg.inv(frames.linear[triangle]))
    return world / np.maximum(np.linalg.norm(world, axis=1, keepdims=True), _MIN_LENGTH)


def texel_tangent_normals(world_normals: np.ndarray, texel_positions: np.ndarray, texel_triangles: np.ndarray,
                          triangles_world: np.ndarray, frames: TangentFrames) -> np.ndarray:
    """Whole Object: (M, 3) tangent-space normals of the texels of a UV map (``geometry.uv_raster``) whose
    (M, 3) ``world_normals`` were baked from the views; ``texel_positions`` and ``triangles_world`` in the same
    frame (both relative to the texels' origin, or both world)."""
    corners = np.asarray(triangles_world, dtype=np.float64)[np.asarray(texel_triangles, dtype=np.int64)]
    weights = barycentric_of_points(texel_positions, corners)
    return world_to_tangent(world_normals, texel_triangles, weights, frames)


def pixel_tangent_normals(normals_camera: np.ndarray, camera_world_matrix: np.ndarray, triangle: np.ndarray,
                          barycentric: np.ndarray, frames: TangentFrames) -> np.ndarray:
    """PROJECT: the (h, w, 3) tangent-space normal map of a projected view. Pixel = texel (the projection UV
    map puts the camera frame on the image), so each pixel's camera-frame normal goes into the tangent space
    of the surface it shows (``geometry.raster.rasterize``: ``triangle`` (h, w), -1 for the background, and
    ``barycentric`` (h, w, 3)). Background pixels get (0, 0, 1)."""
    normals_camera = np.asarray(normals_camera, dtype=np.float64)
    triangle = np.asarray(triangle)
    if normals_camera.ndim != 3 or normals_camera.shape[2] != 3 or normals_camera.shape[:2] != triangle.shape:
        raise ValueError(f"normals_camera must have shape {triangle.shape + (3,)} like triangle, "
                         f"got {normals_camera.shape}")
    result = np.zeros(normals_camera.shape, dtype=np.float64)
    result[..., 2] = 1.0
    covered = triangle >= 0
    world = camera_to_world(normals_camera[covered], camera_world_matrix)
    result[covered] = world_to_tangent(world, triangle[covered], np.asarray(barycentric)[covered], frames)
    return result
