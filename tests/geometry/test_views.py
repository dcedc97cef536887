"""geometry.views: automatic cameras around objects and Blender's projection in numpy (no Blender)."""

import numpy as np
import pytest

from geometry_frames import orthographic, perspective
from geometry.views import ViewSettings, bounding_sphere, look_at, order_by_coverage, place_views, \
    projection_matrix, view_directions


@pytest.mark.parametrize("count, caps", [(1, 0), (3, 0), (4, 1), (5, 1), (6, 2), (8, 2), (16, 2)])
def test_a_ring_above_the_horizon_then_top_and_bottom_as_the_count_allows(count, caps):
    directions = view_directions(count)
    assert directions.shape == (count, 3)
    np.testing.assert_allclose(directions[0], [0.0, -np.cos(np.radians(15)), np.sin(np.radians(15))], atol=1e-12)
    ring = directions[: count - caps]
    np.testing.assert_allclose(ring[:, 2], np.sin(np.radians(15)))
    assert [tuple(d) for d in directions[count - caps:]] == [(0, 0, 1), (0, 0, -1)][:caps]


def test_the_front_view_comes_first_then_the_one_seeing_most_of_what_is_new():
    directions = view_directions(6)
    # a surface that faces +X (and a little -Y): after the front, the view from +X sees most that is new
    normals = np.tile([1.0, -0.2, 0.0], (100, 1))
    order = order_by_coverage(directions, normals / np.linalg.norm(normals, axis=1, keepdims=True))
    assert order[0] == 0
    assert directions[order[1]][0] > 0.9
    assert sorted(order) == list(range(6))


@pytest.mark.parametrize("ortho", [False, True])
@pytest.mark.parametrize("width, height", [(128, 128), (160, 96), (96, 160)])
def test_every_view_frames_the_bounding_sphere_with_the_margin(ortho, width, height):
    centre, radius = np.array([0.5, -1.0, 2.0]), 1.5
    views = place_views(centre, radius, 6, width, height, ortho=ortho, margin=0.1)
    assert views[0].world_matrix[1, 3] < centre[1]  # the front camera is on -Y ...
    np.testing.assert_allclose(-views[0].world_matrix[:3, 2] @ [0, 1, 0], np.cos(np.radians(15)), atol=1e-9)  # ...looking +Y
    rng = np.random.default_rng(1)
    on_sphere = rng.normal(size=(4000, 3))
    on_sphere = centre + radius * on_sphere / np.linalg.norm(on_sphere, axis=1, keepdims=True)
    for view in views:
        camera = view.camera()
        pixel, depth = camera.project(on_sphere)
        near, far = camera.clip_range
        assert (depth > near).all() and (depth < far).all()
        # inside the frame, and the sphere (with its margin) just fits the frame's smaller side
        margin_x = np.minimum(pixel[:, 0], width - pixel[:, 0]).min()
        margin_y = np.minimum(pixel[:, 1], height - pixel[:, 1]).min()
        assert min(margin_x, margin_y) > 0
        smaller = min(width, height)
        assert min(margin_x, margin_y) < 0.1 * smaller


def test_the_projection_is_blenders():
    view = ViewSettings(world_matrix=np.eye(4), ortho=False, lens=35.0, ortho_scale=0.0, sensor_width=36.0,
                        clip_start=0.1, clip_end=100.0, width=160, height=96)
    np.testing.assert_allclose(projection_matrix(view), perspective(35.0, 36.0, 160, 96), rtol=1e-12)
    tall = ViewSettings(np.eye(4), True, 50.0, 4.0, 36.0, 0.1, 100.0, 96, 160)
    np.testing.assert_allclose(projection_matrix(tall), orthographic(4.0, 96, 160), rtol=1e-12)


def test_look_at_and_the_bounding_sphere():
    matrix = look_at(np.array([0.0, 0.0, 5.0]), np.zeros(3))  # straight down: Blender's top view
    np.testing.assert_allclose(matrix[:3, :3], np.eye(3), atol=1e-12)
    centre, radius = bounding_sphere(np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0]]))
    np.testing.assert_allclose(centre, [1, 1, 0])
    assert radius == pytest.approx(np.sqrt(2))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="count"):
        view_directions(0)
    with pytest.raises(ValueError, match="radius"):
        place_views(np.zeros(3), 0.0, 4, 64, 64)
    with pytest.raises(ValueError, match="lens"):
        place_views(np.zeros(3), 1.0, 4, 64, 64, lens=0.0)
