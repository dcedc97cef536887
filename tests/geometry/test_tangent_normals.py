"""geometry.tangent_normals: camera-frame normals -> the tangent space Blender's Normal Map node decodes.

Hand-built scenes with exact answers: the camera-frame normals a perfect normals model would paint are the
geometry's own (``geometry.view_normals`` of the rasterised triangles), and those must come out as
(0, 0, 1) -- colour (0.5, 0.5, 1.0) -- whatever the tilt, the camera, the object's rotation or scale.
Tangent frames are built here from the UV gradients of planar triangles (what MikkTSpace gives for a
planar, linearly mapped triangle; Blender's own tangents are compared in tests/blender/test_pbr_tangents.py).
"""

import numpy as np
import pytest

from geometry_frames import look_at, orthographic, perspective, quad
from geometry import ViewCamera, rasterize, view_normals
from geometry.tangent_normals import (
    TangentFrames, barycentric_of_points, camera_to_world, encode_normal_map, pixel_tangent_normals,
    tangent_to_world, texel_tangent_normals, world_to_tangent,
)
from geometry.uv_raster import rasterize_uv_triangles

# float64 throughout; the rasteriser's barycentrics and view_normals are float32: a few float32 ulps.
EXACT = 1e-5


def uv_frames(corners_object: np.ndarray, uv: np.ndarray, linear=np.eye(3), corner_normals=None) -> TangentFrames:
    """Per-triangle tangent frames from the UV gradients (T = dP/du orthogonalised to N, sign of B . dP/dv)."""
    e1, e2 = corners_object[:, 1] - corners_object[:, 0], corners_object[:, 2] - corners_object[:, 0]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    r = 1.0 / (d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1])
    dpdu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r[:, None]
    dpdv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * r[:, None]
    face = np.cross(e1, e2)
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    normal = np.repeat(face[:, None], 3, axis=1) if corner_normals is None else corner_normals
    tangent = dpdu - np.einsum("ij,ij->i", dpdu, face)[:, None] * face
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    sign = np.sign(np.einsum("ij,ij->i", np.cross(face, tangent), dpdv))
    return TangentFrames(np.repeat(tangent[:, None], 3, axis=1), np.repeat(sign[:, None], 3, axis=1), normal,
                         np.asarray(linear, dtype=np.float64))


def plane(centre=(0.0, 0.0, 0.0), u=(1.0, 0.0, 0.0), v=(0.0, 1.0, 0.0)):
    """A quad and its UVs (0..1, u along ``u``, v along ``v``)."""
    corners = quad(centre, u, v)
    uv = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], dtype=np.float64)
    return corners, uv


def camera_at(eye, target=(0.0, 0.0, 0.0), ortho=False, size=48, up=(0.0, 0.0, 1.0)):
    projection = orthographic(4.0, size, size) if ortho else perspective(30.0, 36.0, size, size)
    return ViewCamera(look_at(eye, target, up), projection, size, size, ortho)


def geometry_normals_in_tangent_space(corners_world, frames, camera):
    hits = rasterize(camera, corners_world)
    normals_camera = view_normals(camera, corners_world, hits)
    assert hits.covered.sum() > 30
    tangent = pixel_tangent_normals(normals_camera, camera.world_matrix, hits.triangle, hits.barycentric, frames)
    return tangent[hits.covered], hits


def test_a_plane_facing_the_camera_is_flat_blue():
    corners, uv = plane()
    camera = camera_at((0.0, 0.0, 6.0), up=(0.0, 1.0, 0.0))
    tangent, _ = geometry_normals_in_tangent_space(corners, uv_frames(corners, uv), camera)
    np.testing.assert_allclose(tangent, np.tile([0.0, 0.0, 1.0], (len(tangent), 1)), atol=EXACT)
    np.testing.assert_allclose(encode_normal_map(tangent), np.tile([0.5, 0.5, 1.0], (len(tangent), 1)), atol=EXACT)


@pytest.mark.parametrize("tilt", [15.0, 40.0, 60.0])
@pytest.mark.parametrize("ortho", [False, True], ids=["perspective", "orthographic"])
def test_tilted_planes_are_flat_blue(tilt, ortho):
    angle = np.radians(tilt)
    corners, uv = plane(u=(np.cos(angle), 0.0, np.sin(angle)), v=(0.0, 1.0, 0.3))
    camera = camera_at((0.5, -1.0, 6.0), ortho=ortho, up=(0.0, 1.0, 0.0))
    tangent, _ = geometry_normals_in_tangent_space(corners, uv_frames(corners, uv), camera)
    np.testing.assert_allclose(tangent, np.tile([0.0, 0.0, 1.0], (len(tangent), 1)), atol=EXACT)


def test_a_rotated_and_scaled_object_is_flat_blue():
    """Frames in object space, the object rotated and scaled non-uniformly: normals go by M^T, not M^-1."""
    corners_object, uv = plane(u=(1.0, 0.0, 0.2), v=(0.0, 1.0, 0.5))
    rotation = _rotation((1.0, 2.0, 0.5), 0.9)
    linear = rotation @ np.diag([1.0, 2.5, 0.6])
    corners_world = corners_object @ linear.T
    frames = uv_frames(corners_object, uv, linear=linear)
    world_normal = np.cross(*(corners_world[0, 1:] - corners_world[0, 0]))
    eye = 6.0 * world_normal / np.linalg.norm(world_normal) + np.array([0.3, 0.2, 0.1])
    tangent, _ = geometry_normals_in_tangent_space(corners_world, frames, camera_at(eye, up=(0.3, 0.1, 1.0)))
    np.testing.assert_allclose(tangent, np.tile([0.0, 0.0, 1.0], (len(tangent), 1)), atol=EXACT)


def test_a_bump_goes_along_the_uv_axes():
    """A normal leaning towards +u reads +x; with u along the camera's up it reads -y of the bitangent."""
    theta = np.radians(20.0)
    leaning_right = np.array([[np.sin(theta), 0.0, np.cos(theta)]])
    camera = camera_at((0.0, 0.0, 6.0), up=(0.0, 1.0, 0.0))
    # u along world +X (the camera's right), v along +Y
    corners, uv = plane()
    tangent = world_to_tangent(camera_to_world(leaning_right, camera.world_matrix), np.array([0]),
                               np.array([[1 / 3, 1 / 3, 1 / 3]]), uv_frames(corners, uv))
    np.testing.assert_allclose(tangent[0], [np.sin(theta), 0.0, np.cos(theta)], atol=1e-12)
    # u along +Y, v along -X: T = +Y, B = cross(N, T) = -X (sign +1), so leaning to +X is -B
    corners, uv = plane(u=(0.0, 1.0, 0.0), v=(-1.0, 0.0, 0.0))
    frames = uv_frames(corners, uv)
    assert frames.sign[0, 0] == 1.0
    tangent = world_to_tangent(camera_to_world(leaning_right, camera.world_matrix), np.array([0]),
                               np.array([[1 / 3, 1 / 3, 1 / 3]]), frames)
    np.testing.assert_allclose(tangent[0], [0.0, -np.sin(theta), np.cos(theta)], atol=1e-12)
    # Mirrored UVs (v running down the plane facing +Z): the bitangent sign flips, B = -Y, the map still reads true
    corners, _ = plane()
    mirrored = np.array([[[0, 1], [1, 1], [1, 0]], [[0, 1], [1, 0], [0, 0]]], dtype=np.float64)
    frames = uv_frames(corners, mirrored)
    assert frames.sign[0, 0] == -1.0
    leaning_up = np.array([[0.0, np.sin(theta), np.cos(theta)]])
    tangent = world_to_tangent(leaning_up, np.array([0]), np.array([[1 / 3, 1 / 3, 1 / 3]]), frames)
    np.testing.assert_allclose(tangent[0], [0.0, -np.sin(theta), np.cos(theta)], atol=1e-12)


def test_world_to_tangent_inverts_the_normal_map_node():
    """Random frames (interpolated, not orthogonal), random normals: decoding what was encoded gives them back."""
    rng = np.random.default_rng(7)
    count = 500
    tangent = rng.normal(size=(count, 3, 3))
    normal = rng.normal(size=(count, 3, 3))
    sign = np.where(rng.random((count, 3)) < 0.5, -1.0, 1.0)
    sign[:] = sign[:, :1]  # a triangle's corners share their sign (MikkTSpace, except at degenerate UVs)
    linear = _rotation((0.2, 1.0, -0.4), 1.3) @ np.diag([0.5, 1.5, 2.0])
    frames = TangentFrames(tangent, sign, normal, linear)
    weights = rng.dirichlet([1.0, 1.0, 1.0], size=count)
    triangle = np.arange(count)
    world = rng.normal(size=(count, 3))
    world /= np.linalg.norm(world, axis=1, keepdims=True)
    encoded = world_to_tangent(world, triangle, weights, frames)
    np.testing.assert_allclose(np.linalg.norm(encoded, axis=1), 1.0, atol=1e-12)
    decoded = tangent_to_world(encoded * 0.5 + 0.5, triangle, weights, frames)
    np.testing.assert_allclose(decoded, world, atol=1e-9)


def test_project_on_a_tilted_plane():
    """PROJECT: the UVs are the camera frame (ViewCamera.uv); the geometry's normals give flat blue and a
    tilted normal decodes back to itself through those UVs' tangents."""
    camera = camera_at((1.0, -2.0, 5.0), up=(0.0, 1.0, 0.0))
    corners, _ = plane(u=(1.2, 0.0, 0.5), v=(0.0, 1.0, -0.4))
    uv = camera.uv(corners.reshape(-1, 3)).reshape(-1, 3, 2)
    frames = uv_frames(corners, uv)
    tangent, hits = geometry_normals_in_tangent_space(corners, frames, camera)
    np.testing.assert_allclose(tangent, np.tile([0.0, 0.0, 1.0], (len(tangent), 1)), atol=EXACT)
    rng = np.random.default_rng(3)
    normals_camera = rng.normal(size=(camera.height, camera.width, 3)) * 0.3 + [0.0, 0.0, 1.0]
    normals_camera /= np.linalg.norm(normals_camera, axis=2, keepdims=True)
    mapped = pixel_tangent_normals(normals_camera, camera.world_matrix, hits.triangle, hits.barycentric, frames)
    covered = hits.covered
    back = tangent_to_world(mapped[covered] * 0.5 + 0.5, hits.triangle[covered], hits.barycentric[covered], frames)
    np.testing.assert_allclose(back, camera_to_world(normals_camera[covered], camera.world_matrix), atol=1e-6)
    assert np.all(mapped[~covered] == [0.0, 0.0, 1.0])


def test_smooth_shading_uses_the_interpolated_corner_normals():
    """A bent strip with smooth corner normals: the geometry's shading normals are flat blue too."""
    angles = np.radians([-30.0, 0.0, 30.0])
    points = np.stack([np.sin(angles), np.zeros(3), np.cos(angles)], axis=1)
    top = points + [0.0, 1.0, 0.0]
    bottom = points - [0.0, 1.0, 0.0]
    normals = points / np.linalg.norm(points, axis=1, keepdims=True)
    triangles, corner_normals, uv = [], [], []
    for i in range(2):
        a, b, c, d = bottom[i], bottom[i + 1], top[i + 1], top[i]
        na, nb = normals[i], normals[i + 1]
        u0, u1 = i / 2, (i + 1) / 2
        triangles += [[a, b, c], [a, c, d]]
        corner_normals += [[na, nb, nb], [na, nb, na]]
        uv += [[[u0, 0], [u1, 0], [u1, 1]], [[u0, 0], [u1, 1], [u0, 1]]]
    corners, corner_normals, uv = (np.array(x, dtype=np.float64) for x in (triangles, corner_normals, uv))
    frames = uv_frames(corners, uv, corner_normals=corner_normals)
    camera = camera_at((0.2, -0.3, 6.0), up=(0.0, 1.0, 0.0))
    hits = rasterize(camera, corners)
    normals_camera = view_normals(camera, corners, hits, corner_normals)
    mapped = pixel_tangent_normals(normals_camera, camera.world_matrix, hits.triangle, hits.barycentric, frames)
    # The frame's tangent is the face's, not orthogonal to the interpolated normal: still exactly (0, 0, 1).
    np.testing.assert_allclose(mapped[hits.covered], np.tile([0.0, 0.0, 1.0], (hits.covered.sum(), 1)), atol=EXACT)


def test_texels_of_a_tilted_plane_are_flat_blue():
    """Whole Object: the texels of a UV map (uv_raster) with the baked world normal of their face."""
    corners, uv = plane(u=(1.0, 0.0, 0.7), v=(0.0, 1.0, 0.2))
    face = np.cross(corners[0, 1] - corners[0, 0], corners[0, 2] - corners[0, 0])
    face /= np.linalg.norm(face)
    texels = rasterize_uv_triangles(uv, corners, np.repeat(np.repeat(face[None, None], 3, 1), 2, 0), 32)
    world = np.tile(face, (len(texels.index), 1))
    mapped = texel_tangent_normals(world, texels.position, texels.triangle, corners - texels.origin,
                                   uv_frames(corners, uv))
    np.testing.assert_allclose(mapped, np.tile([0.0, 0.0, 1.0], (len(mapped), 1)), atol=EXACT)


def test_barycentric_of_points_is_exact_and_survives_degenerate_triangles():
    corners = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 1.0]],
                        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    weights = np.array([[0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
    points = np.einsum("nk,nkj->nj", weights, corners)
    found = barycentric_of_points(points, corners)
    np.testing.assert_allclose(found[0], weights[0], atol=1e-12)
    np.testing.assert_allclose(found[1], [1.0, 0.0, 0.0])


def test_degenerate_uvs_give_the_geometry():
    frames = TangentFrames(np.zeros((1, 3, 3)), np.ones((1, 3)), np.tile([0.0, 0.0, 1.0], (1, 3, 1)), np.eye(3))
    mapped = world_to_tangent(np.array([[0.6, 0.0, 0.8]]), np.array([0]), np.array([[1.0, 0.0, 0.0]]), frames)
    np.testing.assert_allclose(mapped, [[0.0, 0.0, 1.0]])


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="sign"):
        TangentFrames(np.zeros((2, 3, 3)), np.zeros(2), np.zeros((2, 3, 3)), np.eye(3))
    with pytest.raises(ValueError, match="camera_world_matrix"):
        camera_to_world(np.zeros((1, 3)), np.eye(3))


def _rotation(axis, angle):
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_whole_object_bake_of_the_geometrys_normals_is_flat_blue():
    """Views of a tilted, rotated and scaled plane whose normals are the geometry's own, baked with the colour's
    gather into the UV map's tangent space: every covered texel (and the gutter) is (0.5, 0.5, 1.0)."""
    from geometry.bake import BakeView
    from geometry.tangent_bake import bake_tangent_normals

    corners_object, uv = plane(u=(1.0, 0.0, 0.3), v=(0.0, 1.0, -0.2))
    linear = _rotation((0.3, 1.0, 0.2), 0.6) @ np.diag([1.3, 0.8, 1.0])
    corners_world = corners_object @ linear.T
    frames = uv_frames(corners_object, uv, linear=linear)
    face = np.cross(corners_world[0, 1] - corners_world[0, 0], corners_world[0, 2] - corners_world[0, 0])
    face /= np.linalg.norm(face)
    views = []
    for offset in ((0.5, 0.0, 0.0), (-1.0, 0.8, 0.0)):
        eye = 6.0 * face + np.array(offset)
        camera = camera_at(eye, up=(0.0, 0.0, 1.0) if abs(face[2]) < 0.9 else (0.0, 1.0, 0.0))
        hits = rasterize(camera, corners_world)
        world = camera_to_world(view_normals(camera, corners_world, hits), camera.world_matrix)
        views.append(BakeView(camera, world.astype(np.float32), hits.depth))
    texels = rasterize_uv_triangles(uv, corners_world, np.repeat(np.repeat(face[None, None], 3, 1), 2, 0), 32)
    texture = bake_tangent_normals([texels], views, [frames], [corners_world])
    np.testing.assert_allclose(texture.reshape(-1, 3), np.tile([0.5, 0.5, 1.0], (32 * 32, 1)), atol=EXACT)


def test_whole_object_bake_carries_a_leaning_normal_into_tangent_space():
    """Views that all see one leaning world normal on a rotated, scaled plane: the baked map decodes (Normal
    Map node's formula) back to that normal at every covered texel."""
    from geometry.bake import BakeView
    from geometry.tangent_bake import bake_tangent_normals

    corners_object, uv = plane(u=(1.0, 0.0, 0.3), v=(0.0, 1.0, -0.2))
    linear = _rotation((0.3, 1.0, 0.2), 0.6) @ np.diag([1.3, 0.8, 1.0])
    corners_world = corners_object @ linear.T
    frames = uv_frames(corners_object, uv, linear=linear)
    face = np.cross(corners_world[0, 1] - corners_world[0, 0], corners_world[0, 2] - corners_world[0, 0])
    face /= np.linalg.norm(face)
    leaning = face + 0.5 * np.cross(face, [1.0, 0.0, 0.0])
    leaning /= np.linalg.norm(leaning)
    views = []
    for offset in ((0.5, 0.0, 0.0), (-1.0, 0.8, 0.0)):
        camera = camera_at(6.0 * face + np.array(offset), up=(0.0, 0.0, 1.0))
        hits = rasterize(camera, corners_world)
        image = np.zeros((camera.height, camera.width, 3), dtype=np.float32)
        image[:] = leaning
        views.append(BakeView(camera, image, hits.depth))
    texels = rasterize_uv_triangles(uv, corners_world, np.repeat(np.repeat(face[None, None], 3, 1), 2, 0), 32)
    texture = bake_tangent_normals([texels], views, [frames], [corners_world])
    colours = texture.reshape(-1, 3)[texels.index]
    weights = barycentric_of_points(texels.position, (corners_world - texels.origin)[texels.triangle])
    decoded = tangent_to_world(colours, texels.triangle, weights, frames)
    np.testing.assert_allclose(decoded, np.tile(leaning, (len(decoded), 1)), atol=1e-5)
    assert np.abs(colours - [0.5, 0.5, 1.0]).max() > 0.1  # it does lean
