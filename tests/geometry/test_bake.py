"""geometry.bake: known images as the views, baked back into the UV map (no diffusion, no Blender).

The views are exact numpy ray-traced renders of boxes (tests/geometry/scenes.py) whose
surface colour is a smooth function of position, so every texel has a known true colour."""

import numpy as np
import pytest

import scenes
from geometry.bake import BakeSettings, BakeView, bake_texture, gather_views, view_confidence
from geometry.camera import ViewCamera
from geometry.uv_raster import rasterize_uv_triangles
from geometry.views import place_views

TOLERANCE = 2.0 / 255.0
CUBE = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), None)


def _views(placed, boxes):
    views = []
    for settings in placed:
        camera = settings.camera()
        image, depth = scenes.render_boxes(camera, boxes)
        views.append(BakeView(camera, image, depth))
    return views


def _cube_texels(size=192):
    uv, positions, normals = scenes.box_uv_mesh()
    return rasterize_uv_triangles(uv, positions, normals, size)


def _baked(texels, views):
    texture, gathered = bake_texture(texels, views)
    return texture, texture.reshape(-1, 3)[texels.index], gathered


@pytest.mark.parametrize("ortho", [False, True], ids=["perspective", "orthographic"])
def test_views_of_a_known_surface_bake_back_to_it(ortho):
    texels = _cube_texels()
    views = _views(place_views(np.zeros(3), np.sqrt(3.0), 6, 160, 128, ortho=ortho), [CUBE])
    texture, baked, gathered = _baked(texels, views)
    truth = scenes.surface_colour(texels.world_position)
    error = np.abs(baked - truth).max(axis=1)
    assert gathered.seen.mean() > 0.9
    assert (error[gathered.seen] <= TOLERANCE).mean() >= 0.99
    # what no view saw is still close: filled from the nearest seen surface
    assert np.abs(baked - truth).max() < 0.05


def test_an_occluder_never_lends_its_colour():
    texels = _cube_texels()
    occluder = ((-0.4, -2.6, -0.4), (0.4, -1.8, 0.4), scenes.OCCLUDER_COLOUR)
    views = _views(place_views(np.zeros(3), np.sqrt(3.0), 6, 160, 160), [CUBE, occluder])
    front = views[0]
    assert (front.image == scenes.OCCLUDER_COLOUR).all(axis=2).mean() > 0.05  # the front view sees it
    _, baked, gathered = _baked(texels, views)
    truth = scenes.surface_colour(texels.world_position)
    assert baked[:, 0].max() <= truth[:, 0].max() + TOLERANCE  # no texel turned red
    error = np.abs(baked - truth).max(axis=1)
    assert (error[gathered.seen] <= TOLERANCE).mean() >= 0.99
    # the texels the occluder hides from the front view were taken from other views only
    shadowed = scenes.blocked(front.camera.location, texels.world_position, occluder[0], occluder[1])
    assert shadowed.sum() > 50
    assert not (gathered.best_view[shadowed] == 0).any()


def _seam_pairs(texels, spacing):
    """Pairs of texels on different faces (UV islands) next to each other across a box edge."""
    face = texels.triangle // 2
    near_edge = np.flatnonzero((np.abs(texels.world_position) > 1.0 - 2.0 * spacing).sum(axis=1) >= 2)
    position = texels.world_position[near_edge]
    distance = np.sqrt(((position[:, None, :] - position[None, :, :]) ** 2).sum(axis=2))
    distance[face[near_edge][:, None] == face[near_edge][None, :]] = np.inf
    nearest = distance.argmin(axis=1)
    close = distance[np.arange(len(near_edge)), nearest] < 1.5 * spacing
    return np.stack([near_edge[close], near_edge[nearest[close]]], axis=1)


def test_both_sides_of_a_uv_seam_agree_even_where_no_view_saw_them():
    texels = _cube_texels(96)
    # three ring views and a top view: the bottom face and the lower edges are never seen
    views = _views(place_views(np.zeros(3), np.sqrt(3.0), 4, 128, 128), [CUBE])
    _, baked, gathered = _baked(texels, views)
    bottom = texels.normal[:, 2] < -0.99
    assert not gathered.seen[bottom].any()
    pairs = _seam_pairs(texels, spacing=2.0 / (96 / 3))
    assert len(pairs) > 200
    unseen_pairs = ~gathered.seen[pairs[:, 0]] | ~gathered.seen[pairs[:, 1]]
    assert unseen_pairs.sum() > 50
    # no colour jump across the seam beyond how much the surface's true colour changes there: exact
    # where the views saw both sides; where they did not (the whole bottom island: a fill in UV space
    # alone would have nothing of its own to fill it from), the one continuous 3D fill
    jump = np.abs(baked[pairs[:, 0]] - baked[pairs[:, 1]]).max(axis=1)
    truth = scenes.surface_colour(texels.world_position)
    true_change = np.abs(truth[pairs[:, 0]] - truth[pairs[:, 1]]).max(axis=1)
    assert (jump[~unseen_pairs] <= true_change[~unseen_pairs] + TOLERANCE).all()
    assert (jump[unseen_pairs] <= true_change[unseen_pairs] + 10.0 / 255.0).all()
    on_bottom = bottom[pairs[:, 0]] != bottom[pairs[:, 1]]
    assert on_bottom.sum() > 50


def test_the_gutter_is_filled_with_the_neighbouring_island_colours():
    texels = _cube_texels()
    views = _views(place_views(np.zeros(3), np.sqrt(3.0), 6, 128, 128), [CUBE])
    texture, baked, _ = _baked(texels, views)
    covered = texels.mask
    assert (~covered).sum() > 1000
    # every gutter texel is a blend of covered colours (never black, never out of range) ...
    assert (texture.reshape(-1, 3).min(axis=0) >= baked.min(axis=0) - 1e-6).all()
    assert (texture.reshape(-1, 3).max(axis=0) <= baked.max(axis=0) + 1e-6).all()
    # ... and the texels right outside an island continue it
    rows, columns = np.nonzero(~covered[:, 1:] & covered[:, :-1])
    step = np.abs(texture[rows, columns + 1] - texture[rows, columns]).max(axis=1)
    assert step.max() < 0.03


def test_silhouettes_and_frame_edges_get_no_confidence():
    settings = BakeSettings()
    view = _views(place_views(np.zeros(3), np.sqrt(3.0), 1, 96, 96), [CUBE])[0]
    confidence = view_confidence(view, settings)
    inside = np.isfinite(view.depth)
    border = inside & ~(np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1))
    assert border.any() and (confidence[border] == 0).all()
    assert (confidence[0] == 0).all() and (confidence[:, -1] == 0).all()
    assert confidence.max() == 1.0


def test_a_linear_image_samples_exactly_between_pixels():
    texels = _cube_texels(64)
    settings = place_views(np.zeros(3), np.sqrt(3.0), 1, 64, 48)[0]
    camera = settings.camera()
    _, depth = scenes.render_boxes(camera, [CUBE])
    rows, columns = np.mgrid[0:48, 0:64]
    image = np.stack([(columns + 0.5) / 64, (rows + 0.5) / 48, np.full(rows.shape, 0.5)], axis=2).astype(np.float32)
    gathered = gather_views(texels, [BakeView(camera, image, depth)])
    pixel, _ = camera.project(texels.world_position[gathered.seen])
    expected = np.stack([pixel[:, 0] / 64, pixel[:, 1] / 48], axis=1)
    np.testing.assert_allclose(gathered.colour[gathered.seen, :2], expected, atol=1e-4)


def test_bad_input_is_refused():
    texels = _cube_texels(16)
    camera = place_views(np.zeros(3), np.sqrt(3.0), 1, 32, 32)[0].camera()
    with pytest.raises(ValueError, match="views"):
        gather_views(texels, [])
    with pytest.raises(ValueError, match="depth"):
        BakeView(camera, np.zeros((32, 32, 3), np.float32), np.zeros((16, 32), np.float32))
    with pytest.raises(ValueError, match="image"):
        BakeView(camera, np.zeros((32, 16, 3), np.float32), np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="cutoff_degrees"):
        BakeSettings(cutoff_degrees=90)
    away = ViewCamera(np.diag([1.0, -1.0, -1.0, 1.0]) @ np.eye(4), camera.projection, 32, 32, False)
    blank = BakeView(away, np.zeros((32, 32, 3), np.float32), np.full((32, 32), np.inf, np.float32))
    with pytest.raises(ValueError, match="see none"):
        bake_texture(texels, [blank])


def test_instances_of_one_mesh_pool_into_one_texture():
    """Two cubes sharing one mesh (one UV map): each gathered at its place, pooled by weight."""
    from geometry.bake import finish_texture, merge_gathered

    uv, positions, normals = scenes.box_uv_mesh()
    left = rasterize_uv_triangles(uv, positions - [1.6, 0, 0], normals, 64)
    right = rasterize_uv_triangles(uv, positions + [1.6, 0, 0], normals, 64)
    boxes = [((-2.6, -1, -1), (-0.6, 1, 1), None), ((0.6, -1, -1), (2.6, 1, 1), None)]
    views = _views(place_views(np.zeros(3), 3.0, 6, 160, 160), boxes)
    parts = [gather_views(left, views), gather_views(right, views)]
    merged = merge_gathered(parts)
    both = parts[0].seen & parts[1].seen
    only_left = parts[0].seen & ~parts[1].seen
    assert both.sum() > 100 and only_left.sum() > 10
    np.testing.assert_allclose(merged.colour[only_left], parts[0].colour[only_left], rtol=1e-6)
    expected = (parts[0].colour * parts[0].weight[:, None] + parts[1].colour * parts[1].weight[:, None])[both] \
        / (parts[0].weight + parts[1].weight)[both, None]
    np.testing.assert_allclose(merged.colour[both], expected, rtol=1e-5)
    np.testing.assert_allclose(merged.weight, parts[0].weight + parts[1].weight)
    assert finish_texture(left, merged).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="same texels"):
        merge_gathered([parts[0], gather_views(rasterize_uv_triangles(uv, positions, normals, 32), views)])


def test_the_filled_texture_stays_within_the_colours_the_views_gave():
    """Regression: views all 1.0 baked to a texture up to 1 + 2.4e-7 (fill and gutter are float32 means), which the
    engine refused as SEQUENTIAL's init image ("values from 0 to 1"). Every texel, filled or padded, stays in the
    range of the seen colours, per channel."""
    uv, positions, normals = scenes.box_uv_mesh()
    texels = rasterize_uv_triangles(uv, positions, normals, 512)
    views = []
    for settings in place_views(np.zeros(3), np.sqrt(3.0), 6, 256, 256):
        camera = settings.camera()
        _, depth = scenes.render_boxes(camera, [CUBE])
        views.append(BakeView(camera, np.ones((256, 256, 3), np.float32), depth))
    texture, gathered = bake_texture(texels, views)
    assert gathered.seen.mean() > 0.9 and not gathered.seen.all()  # something is filled
    assert texture.max() == 1.0 and texture.min() == 1.0
    rng = np.random.default_rng(2)
    for view in views:
        view.image[:] = rng.uniform(0.25, 0.75, view.image.shape).astype(np.float32)
        view.image[..., 1] += 0.25  # green in 0.5..1
    texture, gathered = bake_texture(texels, views)
    seen = gathered.colour[gathered.seen]
    assert (texture.reshape(-1, 3).min(axis=0) >= seen.min(axis=0)).all()
    assert (texture.reshape(-1, 3).max(axis=0) <= seen.max(axis=0)).all()
