"""Whole Object on meshes as artists make them (issue 23), no Blender: flipped normals, UVs in any tile,
texels shared by mirrored or stacked islands, flat objects, objects far from the world origin."""

import numpy as np
import pytest

import scenes
from geometry.bake import BakeView, bake_texture, gather_views
from geometry.camera import ViewCamera
from geometry.uv_raster import rasterize_uv_triangles
from geometry.uv_tiles import UVTileError, uv_islands
from geometry.views import look_at, outward_normals, place_views, projection_matrix, ViewSettings

TOLERANCE = 2.0 / 255.0
CUBE = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), None)


def _views(placed, boxes, shift=np.zeros(3)):
    views = []
    for settings in placed:
        camera = settings.camera()
        image, depth = scenes.render_boxes(camera, boxes)
        moved = settings.world_matrix.copy()
        moved[:3, 3] += shift
        views.append(BakeView(ViewCamera(moved, camera.projection, camera.width, camera.height, camera.ortho),
                              image, depth))
    return views


def _flipped(uv, positions, normals):
    """The same mesh with its normals flipped as Blender flips them: winding reversed, normals negated."""
    return uv[:, ::-1], positions[:, ::-1], -normals[:, ::-1]


@pytest.mark.parametrize("ortho", [False, True], ids=["perspective", "orthographic"])
def test_a_cube_with_flipped_normals_bakes_as_the_views_saw_it(ortho):
    mesh = scenes.box_uv_mesh()
    views = _views(place_views(np.zeros(3), np.sqrt(3.0), 6, 128, 128, ortho=ortho), [CUBE])
    texels = rasterize_uv_triangles(*mesh, 96)
    flipped = rasterize_uv_triangles(*_flipped(*mesh), 96)
    np.testing.assert_array_equal(np.sort(flipped.index), np.sort(texels.index))
    texture, gathered = bake_texture(texels, views)
    flipped_texture, flipped_gathered = bake_texture(flipped, views)
    assert gathered.seen.mean() > 0.85
    # the flipped cube is seen exactly where the cube is, with exactly its colours
    order = np.argsort(flipped.index)[np.argsort(np.argsort(texels.index))]
    np.testing.assert_array_equal(flipped_gathered.seen[order], gathered.seen)
    np.testing.assert_allclose(flipped_gathered.colour[order], gathered.colour, atol=1e-6)
    np.testing.assert_allclose(flipped_texture, texture, atol=1e-5)
    truth = scenes.surface_colour(flipped.world_position)
    baked = flipped_texture.reshape(-1, 3)[flipped.index]
    assert (np.abs(baked - truth).max(axis=1)[flipped_gathered.seen] <= TOLERANCE).all()


def test_inconsistent_normals_inside_a_closed_cube_still_hide_its_far_side():
    uv, positions, normals = scenes.box_uv_mesh()
    normals = normals.copy()
    normals[::3] *= -1  # every third triangle points inwards
    texels = rasterize_uv_triangles(uv, positions, normals, 96)
    occluder = ((-0.4, -2.6, -0.4), (0.4, -1.8, 0.4), scenes.OCCLUDER_COLOUR)
    views = _views(place_views(np.zeros(3), np.sqrt(3.0), 6, 160, 160), [CUBE, occluder])
    texture, gathered = bake_texture(texels, views)
    baked = texture.reshape(-1, 3)[texels.index]
    truth = scenes.surface_colour(texels.world_position)
    assert gathered.seen.mean() > 0.85
    assert baked[:, 0].max() <= truth[:, 0].max() + TOLERANCE  # the occluder's red never leaks in
    assert (np.abs(baked - truth).max(axis=1)[gathered.seen] <= TOLERANCE).mean() >= 0.99


def test_uvs_in_another_tile_find_the_same_texels():
    uv, positions, normals = scenes.box_uv_mesh()
    texels = rasterize_uv_triangles(uv, positions, normals, 64)
    for shift in ([1.0, 0.0], [3.0, 2.0], [-1.0, 0.0]):
        moved = rasterize_uv_triangles(uv + shift, positions, normals, 64)
        np.testing.assert_array_equal(moved.index, texels.index)
        np.testing.assert_allclose(moved.world_position, texels.world_position, atol=1e-5)


def test_an_island_poking_past_the_tile_border_wraps_around_whole():
    # one quad UV-mapped onto [0.75, 1.25] x [0.25, 0.75]: its right half wraps to u 0..0.25
    uv = np.array([[[0.75, 0.25], [1.25, 0.25], [1.25, 0.75]], [[0.75, 0.25], [1.25, 0.75], [0.75, 0.75]]])
    positions = np.concatenate([(uv - [0.75, 0.25]) * 2.0, np.zeros((2, 3, 1))], axis=2)
    texels = rasterize_uv_triangles(uv, positions, np.tile([0.0, 0, 1], (2, 3, 1)), 64)
    assert len(texels.index) == 32 * 32 and texels.shared == 0
    rows, columns = np.divmod(texels.index, 64)
    assert set(np.unique(columns)) == set(range(48, 64)) | set(range(0, 16))
    u = (columns + 0.5) / 64
    u = np.where(u < 0.5, u + 1.0, u)  # where the texel lies on the island
    np.testing.assert_allclose(texels.world_position[:, 0], (u - 0.75) * 2.0, atol=1e-5)


def _quad(u0, v0, u1, v1, z=0.0):
    uv = np.array([[[u0, v0], [u1, v0], [u1, v1]], [[u0, v0], [u1, v1], [u0, v1]]], dtype=np.float64)
    positions = np.concatenate([uv, np.full((2, 3, 1), z)], axis=2)
    return uv, positions, np.tile([0.0, 0, 1], (2, 3, 1))


def test_uvs_spanning_several_udim_tiles_are_refused_naming_them():
    parts = [_quad(0.1, 0.1, 0.9, 0.9), _quad(1.1, 0.1, 1.9, 0.9, z=1.0), _quad(0.2, 1.2, 0.8, 1.8, z=2.0)]
    uv, positions, normals = (np.concatenate(arrays) for arrays in zip(*parts))
    with pytest.raises(UVTileError, match="UVs span UDIM tiles 1001, 1002, 1011: "):
        rasterize_uv_triangles(uv, positions, normals, 32)
    # an island wider than a tile repeats the texture over itself: refused too
    with pytest.raises(UVTileError, match="UDIM tiles 1001, 1002, 1003.*3.00 tiles wide"):
        rasterize_uv_triangles(*_quad(0.0, 0.0, 3.0, 0.5), 32)


def test_islands_are_the_triangles_sharing_corners():
    parts = [_quad(0.1, 0.1, 0.4, 0.4), _quad(0.5, 0.5, 0.9, 0.9), _quad(0.1, 0.1, 0.4, 0.4, z=1.0)]
    uv, positions, _ = (np.concatenate(arrays) for arrays in zip(*parts))
    label = uv_islands(uv, positions)
    assert label[0] == label[1] and label[2] == label[3] and label[4] == label[5]
    assert len({label[0], label[2], label[4]}) == 3  # stacked on the same UVs, elsewhere in space: its own


def _top_view(size=64, centre=(0.0, 0.0), shift=np.zeros(3)):
    settings = ViewSettings(look_at(np.array([*centre, 5.0]), np.array([*centre, 0.0])), True, 50.0, 3.0, 36.0,
                            0.1, 10.0, size, size)
    matrix = settings.world_matrix.copy()
    matrix[:3, 3] += shift
    return ViewCamera(matrix, projection_matrix(settings), size, size, True)


def _view_of_plane(camera, image):
    """A view of the plane z = 0 covering the whole frame (depth 5 everywhere)."""
    return BakeView(camera, image, np.full((camera.height, camera.width), 5.0, np.float32))


def test_a_texel_shared_by_a_seen_and_an_unseen_face_takes_the_seen_face():
    rng = np.random.default_rng(5)
    image = rng.uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32)
    image = (image + np.roll(image, 1, 0) + np.roll(image, 1, 1) + np.roll(image, 1, (0, 1))) / 4  # smoother
    view = _view_of_plane(_top_view(), image)
    # the seen face: the plane z = 0 under the view; the unseen one: the same UV square 10 units away
    seen = _quad(0.2, 0.2, 0.8, 0.8)
    seen = (seen[0], (seen[1] - [0.5, 0.5, 0.0]) * [1.5, 1.5, 1.0], seen[2])
    unseen = (seen[0], seen[1] + [10.0, 0.0, 0.0], seen[2])
    alone = gather_views(rasterize_uv_triangles(*seen, 64), [view])
    assert alone.seen.all()
    for first, second in ((seen, unseen), (unseen, seen)):  # whichever triangle comes last
        texels = rasterize_uv_triangles(*(np.concatenate(arrays) for arrays in zip(first, second)), 64)
        assert texels.shared > 0.8 * len(texels.index)
        gathered = gather_views(texels, [view])
        assert gathered.seen.all()
        np.testing.assert_allclose(gathered.colour, alone.colour, atol=1e-6)
        np.testing.assert_allclose(gathered.best_cosine, alone.best_cosine, atol=1e-6)


def test_a_texel_shared_by_two_seen_faces_weighs_them_like_views():
    image = np.zeros((64, 64, 3), np.float32)
    image[:, :32] = (0.9, 0.1, 0.1)
    image[:, 32:] = (0.1, 0.1, 0.9)
    view = _view_of_plane(_top_view(), image)
    # the left half of the frame (tilted a little: a lower weight) and the right half share one UV square
    uv, left, normals = _quad(0.1, 0.1, 0.9, 0.9)
    left = (left - [0.5, 0.5, 0.0]) * [0.8, 1.6, 0.0] + [-0.5, 0.0, 0.0]
    right = left + [1.0, 0.0, 0.0]
    tilted = np.tile(np.array([0.3, 0.0, 1.0]) / np.linalg.norm([0.3, 0.0, 1.0]), (2, 3, 1))
    parts = [gather_views(rasterize_uv_triangles(uv, p, n, 32), [view]) for p, n in ((left, tilted), (right, normals))]
    texels = rasterize_uv_triangles(np.concatenate([uv, uv]), np.concatenate([left, right]),
                                    np.concatenate([tilted, normals]), 32)
    pooled = gather_views(texels, [view])
    expected = (parts[0].colour * parts[0].weight[:, None] + parts[1].colour * parts[1].weight[:, None]) \
        / (parts[0].weight + parts[1].weight)[:, None]
    inner = parts[0].seen & parts[1].seen
    assert inner.mean() > 0.6
    np.testing.assert_allclose(pooled.colour[inner], expected[inner], atol=1e-5)
    np.testing.assert_allclose(pooled.weight, parts[0].weight + parts[1].weight, rtol=1e-5)
    assert (pooled.colour[inner, 2] > pooled.colour[inner, 0]).all()  # the frontal right half weighs more


def test_an_object_100_km_away_keeps_every_texel():
    mesh = scenes.box_uv_mesh()
    placed = place_views(np.zeros(3), np.sqrt(3.0), 6, 128, 128)
    near = rasterize_uv_triangles(*mesh, 96)
    shift = np.array([1.0e5, -0.7e5, 0.3e5])
    far = rasterize_uv_triangles(mesh[0], mesh[1] + shift, mesh[2], 96)
    np.testing.assert_allclose(far.world_position - shift, near.world_position, atol=1e-6)
    at_home = gather_views(near, _views(placed, [CUBE]))
    away = gather_views(far, _views(placed, [CUBE], shift))
    assert away.seen.sum() == at_home.seen.sum()
    np.testing.assert_allclose(away.colour, at_home.colour, atol=1e-4)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_one_to_three_views_of_a_flat_object_include_the_top_view(count):
    # a floor: 2 x 2 quads facing up (and the same floor with its normals flipped)
    normals = np.tile([0.0, 0.0, 1.0], (8, 1))
    for facing in (normals, outward_normals(-normals, np.zeros((8, 3)), np.zeros(3))):
        views = place_views(np.zeros(3), 1.5, count, 64, 64, normals=facing)
        np.testing.assert_allclose(-views[0].world_matrix[:3, 2], [0.0, 0.0, -1.0], atol=1e-12)  # looking down
        assert len(views) == count
        if count > 1:
            assert views[1].world_matrix[1, 3] < 0  # then the front
    # a cube keeps its ring (front first)
    cube_normals = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    views = place_views(np.zeros(3), 1.5, count, 64, 64, normals=cube_normals)
    assert all(abs(view.world_matrix[2, 2]) < 0.5 for view in views)


def test_outward_normals_turn_a_flipped_mesh_around():
    _, positions, normals = scenes.box_uv_mesh()
    face = normals[:, 0]
    np.testing.assert_array_equal(outward_normals(-face, positions.mean(axis=1), np.zeros(3)), face)
    np.testing.assert_array_equal(outward_normals(face, positions.mean(axis=1), np.zeros(3)), face)


def test_an_island_a_little_wider_than_a_tile_wraps_onto_itself():
    # u 0.1 .. 1.35: the part past 1 shows the texels of u 0.1 .. 0.35, as Blender repeats the image there
    texels = rasterize_uv_triangles(*_quad(0.1, 0.2, 1.35, 0.6), 64)
    rows, columns = np.divmod(texels.index, 64)
    assert set(np.unique(columns)) == set(range(64))
    assert len(texels.extra_owner) > 0.9 * 16 * 26  # the wrapped part: every texel a second surface point


def test_faces_on_whole_tiles_below_zero_repeat_the_image_and_are_not_udim():
    # each face on a whole tile, in tiles (-1, -1), (-1, 0), (0, 0): no UDIM image has tiles below 0
    parts = [_quad(-1.0, -1.0, 0.0, 0.0), _quad(-1.0, 0.0, 0.0, 1.0, z=1.0), _quad(0.0, 0.0, 1.0, 1.0, z=2.0)]
    uv, positions, normals = (np.concatenate(arrays) for arrays in zip(*parts))
    texels = rasterize_uv_triangles(uv, positions, normals, 16)
    assert len(texels.index) == 16 * 16
    assert (np.bincount(texels.extra_owner, minlength=256) >= 2).all()  # every texel: all three faces pooled
