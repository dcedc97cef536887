"""ViewCamera: projection, pixel rays and UVs agree with each other and with hand-computed frames."""

from __future__ import annotations

import numpy as np
import pytest

from geometry_frames import look_at, orthographic, perspective

WIDTH, HEIGHT = 64, 48


@pytest.fixture
def tilted_perspective(geometry_api):
    world = look_at((3.0, -4.0, 2.0), (0.2, 0.1, 0.3))
    return geometry_api.ViewCamera(world, perspective(50.0, 36.0, WIDTH, HEIGHT, shift_x=0.1, shift_y=-0.05),
                                   WIDTH, HEIGHT, ortho=False)


@pytest.fixture
def tilted_ortho(geometry_api):
    world = look_at((-2.0, 5.0, 3.0), (0.0, 0.0, 0.0))
    return geometry_api.ViewCamera(world, orthographic(4.0, WIDTH, HEIGHT), WIDTH, HEIGHT, ortho=True)


def test_point_on_axis_projects_to_centre_at_its_distance(geometry_api):
    world = look_at((1.0, 2.0, 3.0), (1.0, 2.0, -10.0), up=(0.0, 1.0, 0.0))
    camera = geometry_api.ViewCamera(world, perspective(50.0, 36.0, WIDTH, HEIGHT), WIDTH, HEIGHT, ortho=False)
    pixel, depth = camera.project(np.array([[1.0, 2.0, -4.0]]))
    np.testing.assert_allclose(pixel, [[WIDTH / 2, HEIGHT / 2]], atol=1e-9)
    np.testing.assert_allclose(depth, [7.0])


def test_frustum_corners_land_on_frame_corners(geometry_api):
    # A 36 mm sensor at 50 mm: at 5 m the frame is 3.6 m wide and 2.7 m tall (64x48), top row first.
    camera = geometry_api.ViewCamera(np.eye(4), perspective(50.0, 36.0, WIDTH, HEIGHT), WIDTH, HEIGHT, ortho=False)
    top_left = np.array([[-1.8, 1.35, -5.0]])
    bottom_right = np.array([[1.8, -1.35, -5.0]])
    np.testing.assert_allclose(camera.project(top_left)[0], [[0.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(camera.project(bottom_right)[0], [[WIDTH, HEIGHT]], atol=1e-9)
    np.testing.assert_allclose(camera.uv(top_left), [[0.0, 1.0]], atol=1e-6)


def test_clip_range_is_the_projection_near_and_far(geometry_api):
    camera = geometry_api.ViewCamera(np.eye(4), perspective(35.0, 36.0, 32, 32, near=0.25, far=40.0), 32, 32, False)
    np.testing.assert_allclose(camera.clip_range, (0.25, 40.0))
    ortho = geometry_api.ViewCamera(np.eye(4), orthographic(3.0, 32, 32, near=0.5, far=9.0), 32, 32, True)
    np.testing.assert_allclose(ortho.clip_range, (0.5, 9.0))


@pytest.mark.parametrize("which", ["tilted_perspective", "tilted_ortho"])
def test_pixel_rays_project_back_to_pixel_centres(which, request):
    camera = request.getfixturevalue(which)
    origins, directions = camera.pixel_rays()
    assert origins.shape == directions.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0)
    points = origins + directions * 3.7
    pixel, depth = camera.project(points.reshape(-1, 3))
    columns, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    np.testing.assert_allclose(pixel[:, 0], columns.ravel(), atol=1e-7)
    np.testing.assert_allclose(pixel[:, 1], rows.ravel(), atol=1e-7)
    # Origins lie on the camera plane: their view depth is 0.
    np.testing.assert_allclose(camera.project(origins.reshape(-1, 3))[1], 0.0, atol=1e-9)
    np.testing.assert_allclose(depth, 3.7 * (directions.reshape(-1, 3) @ camera.forward), atol=1e-9)


def test_perspective_rays_start_at_the_camera_and_ortho_rays_are_parallel(tilted_perspective, tilted_ortho):
    origins, _ = tilted_perspective.pixel_rays()
    np.testing.assert_allclose(origins.reshape(-1, 3), np.broadcast_to(tilted_perspective.location, (WIDTH * HEIGHT, 3)),
                               atol=1e-9)
    _, directions = tilted_ortho.pixel_rays()
    np.testing.assert_allclose(directions.reshape(-1, 3), np.broadcast_to(tilted_ortho.forward, (WIDTH * HEIGHT, 3)),
                               atol=1e-12)


def test_bad_shapes_are_refused(geometry_api):
    with pytest.raises(ValueError, match="projection"):
        geometry_api.ViewCamera(np.eye(4), np.eye(3), 8, 8, False)
    with pytest.raises(ValueError, match="width and height"):
        geometry_api.ViewCamera(np.eye(4), np.eye(4), 0, 8, False)
