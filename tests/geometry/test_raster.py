"""The z-buffer against hand-computed depths and a brute-force ray caster."""

from __future__ import annotations

import numpy as np
import pytest

from geometry_frames import look_at, orthographic, perspective, quad, ray_cast_depth

WIDTH, HEIGHT = 40, 30


def _camera(geometry_api, ortho: bool, eye=(0.0, 0.0, 0.0), target=(0.0, 0.0, -1.0), near=0.1, far=100.0):
    world = look_at(eye, target, up=(0.0, 1.0, 0.0))
    assert np.isfinite(world).all()
    projection = (orthographic(4.0, WIDTH, HEIGHT, near, far) if ortho
                  else perspective(35.0, 36.0, WIDTH, HEIGHT, near, far, shift_x=0.07))
    return geometry_api.ViewCamera(world, projection, WIDTH, HEIGHT, ortho=ortho)


@pytest.mark.parametrize("ortho", [False, True])
def test_plane_facing_the_camera_has_its_distance_everywhere(geometry_api, ortho):
    camera = _camera(geometry_api, ortho)
    plane = quad((0.0, 0.0, -6.0), (50.0, 0.0, 0.0), (0.0, 50.0, 0.0))
    hits = geometry_api.rasterize(camera, plane)
    assert hits.covered.all()
    np.testing.assert_allclose(hits.depth, 6.0, rtol=1e-6)
    normals = geometry_api.view_normals(camera, plane, hits)
    np.testing.assert_allclose(normals.reshape(-1, 3), np.broadcast_to([0, 0, 1], (WIDTH * HEIGHT, 3)), atol=1e-6)


@pytest.mark.parametrize("ortho", [False, True])
def test_random_triangles_match_a_brute_force_ray_caster(geometry_api, ortho):
    rng = np.random.default_rng(7)
    camera = _camera(geometry_api, ortho, eye=(0.5, -6.0, 1.0), target=(0.0, 0.0, 0.0))
    centres = rng.uniform(-2.0, 2.0, (60, 1, 3))
    triangles = centres + rng.normal(0.0, 0.8, (60, 3, 3))
    hits = geometry_api.rasterize(camera, triangles)
    origins, directions = camera.pixel_rays()
    expected_depth, expected_triangle = ray_cast_depth(origins, directions, camera.forward, triangles,
                                                       *camera.clip_range)
    seen = expected_triangle >= 0
    # Pixel centres exactly on a shared edge may pick either neighbour: compare where the caster is unambiguous.
    agree = hits.triangle.ravel() == expected_triangle
    assert agree.mean() > 0.99
    assert (hits.covered.ravel() == seen).mean() > 0.995
    both = seen & hits.covered.ravel()
    np.testing.assert_allclose(hits.depth.ravel()[both & agree], expected_depth[both & agree], rtol=1e-5)
    # The surface point the weights name lies on the ray through the pixel centre.
    points = np.einsum("nk,nkj->nj", hits.barycentric.reshape(-1, 3)[both],
                       triangles[hits.triangle.ravel()[both]])
    pixel, depth = camera.project(points)
    columns, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    np.testing.assert_allclose(pixel[:, 0], columns.ravel()[both], atol=1e-3)
    np.testing.assert_allclose(pixel[:, 1], rows.ravel()[both], atol=1e-3)
    np.testing.assert_allclose(depth, hits.depth.ravel()[both], rtol=1e-5)


def test_the_nearer_surface_wins_whatever_the_order(geometry_api):
    camera = _camera(geometry_api, ortho=False)
    far_plane = quad((0.0, 0.0, -8.0), (20.0, 0.0, 0.0), (0.0, 20.0, 0.0))
    near_square = quad((0.0, 0.0, -4.0), (0.5, 0.0, 0.0), (0.0, 0.5, 0.0))
    for triangles in (np.concatenate([far_plane, near_square]), np.concatenate([near_square, far_plane])):
        hits = geometry_api.rasterize(camera, triangles)
        assert hits.covered.all()
        assert set(np.unique(hits.depth.round(4))) == {4.0, 8.0}
        assert 0 < (hits.depth == 4.0).sum() < WIDTH * HEIGHT / 2


def test_ortho_coverage_follows_pixel_centres(geometry_api):
    # Ortho scale 4 over 40 px: 0.1 per pixel. A square from x = -2 to x = 0.05 covers centres of columns 0..20.
    camera = _camera(geometry_api, ortho=True)
    left = quad((-0.975, 0.0, -3.0), (1.025, 0.0, 0.0), (0.0, 5.0, 0.0))
    hits = geometry_api.rasterize(camera, left)
    covered_columns = np.flatnonzero(hits.covered.all(axis=0))
    assert covered_columns.tolist() == list(range(21))
    assert not hits.covered[:, 21:].any()


def test_geometry_crossing_the_clip_start_is_clipped_not_lost(geometry_api):
    # A floor under the camera running from behind it to far ahead: every pixel below the horizon sees it.
    camera = _camera(geometry_api, ortho=False, near=0.5)
    floor = quad((0.0, -1.0, -40.0), (40.0, 0.0, 0.0), (0.0, 0.0, 45.0))
    hits = geometry_api.rasterize(camera, floor)
    origins, directions = camera.pixel_rays()
    expected_depth, expected = ray_cast_depth(origins, directions, camera.forward, floor, *camera.clip_range)
    np.testing.assert_array_equal(hits.covered.ravel(), expected >= 0)
    seen = expected >= 0
    np.testing.assert_allclose(hits.depth.ravel()[seen], expected_depth[seen], rtol=1e-5)
    assert hits.covered[-1].all() and not hits.covered[0].any()


def test_triangles_outside_the_clip_range_are_not_seen(geometry_api):
    camera = _camera(geometry_api, ortho=False, near=1.0, far=10.0)
    too_far = quad((0.0, 0.0, -12.0), (50.0, 0.0, 0.0), (0.0, 50.0, 0.0))
    behind = quad((0.0, 0.0, 3.0), (50.0, 0.0, 0.0), (0.0, 50.0, 0.0))
    hits = geometry_api.rasterize(camera, np.concatenate([too_far, behind]))
    assert not hits.covered.any()
    assert np.isinf(hits.depth).all()


def test_back_faces_and_smooth_normals_face_the_viewer(geometry_api):
    camera = _camera(geometry_api, ortho=False)
    # Wound clockwise as seen from the camera: its geometric normal points away.
    plane = quad((0.0, 0.0, -5.0), (0.0, 50.0, 0.0), (50.0, 0.0, 0.0))
    hits = geometry_api.rasterize(camera, plane)
    normals = geometry_api.view_normals(camera, plane, hits)
    np.testing.assert_allclose(normals[..., 2], 1.0, atol=1e-6)
    tilted = np.broadcast_to(np.array([0.6, 0.0, -0.8]), (2, 3, 3))  # away from the camera, tilted right
    smooth = geometry_api.view_normals(camera, plane, hits, corner_normals_world=tilted)
    np.testing.assert_allclose(smooth[HEIGHT // 2, WIDTH // 2], [-0.6, 0.0, 0.8], atol=1e-6)


def test_blocks_of_any_size_give_the_same_image(geometry_api, monkeypatch):
    rng = np.random.default_rng(3)
    camera = _camera(geometry_api, ortho=False, eye=(0.0, -5.0, 0.0), target=(0.0, 0.0, 0.0))
    triangles = rng.uniform(-2.0, 2.0, (1, 1, 3)) + rng.normal(0.0, 1.5, (30, 3, 3))
    triangles = np.concatenate([triangles, quad((0, 3, 0), (9, 0, 0), (0, 0, 9))])
    whole = geometry_api.rasterize(camera, triangles)
    assert whole.covered.all() and len(np.unique(whole.triangle)) > 10
    raster = __import__(geometry_api.__name__ + ".raster", fromlist=["raster"])
    monkeypatch.setattr(raster, "_BLOCK_FRAGMENTS", 37)
    small = geometry_api.rasterize(camera, triangles)
    np.testing.assert_array_equal(small.triangle, whole.triangle)
    np.testing.assert_array_equal(small.depth, whole.depth)
