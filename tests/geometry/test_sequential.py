"""geometry.sequential: the texture baked so far drawn into the next view, and where that view repaints."""

import numpy as np

import scenes
from geometry.bake import BakeView, bake_texture
from geometry.raster import rasterize
from geometry.sequential import render_texture, repaint_mask
from geometry.uv_raster import rasterize_uv_triangles
from geometry.views import place_views

CUBE = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), None)


def test_the_baked_texture_drawn_into_its_view_gives_the_view_back_and_only_new_surface_is_repainted():
    uv, positions, normals = scenes.box_uv_mesh()
    texels = rasterize_uv_triangles(uv, positions, normals, 256)
    placed = place_views(np.zeros(3), np.sqrt(3.0), 6, 128, 128)
    cameras = [view.camera() for view in placed]
    first_image, first_depth = scenes.render_boxes(cameras[0], [CUBE])
    texture, gathered = bake_texture(texels, [BakeView(cameras[0], first_image, first_depth)])

    hits = rasterize(cameras[0], positions)
    np.testing.assert_allclose(hits.depth[np.isfinite(first_depth)], first_depth[np.isfinite(first_depth)], rtol=1e-4)
    drawn, covered = render_texture(hits, uv, texture, first_depth)
    assert covered.sum() > 0.2 * covered.size
    # the view back where it saw the surface frontally (the thin band of the top face it sees at 75 deg
    # lies within its silhouette fade: unseen, filled from the front face)
    frontal = covered & (normals[hits.triangle, 0] @ -cameras[0].forward > 0.5)
    error = np.abs(drawn - first_image).max(axis=2)[frontal]
    assert frontal.sum() > 0.9 * covered.sum()
    # the rest lie within its silhouette fade, filled from their 3D neighbours: close, not exact
    assert (error < 2.0 / 255.0).mean() > 0.9 and error.max() < 0.03

    best = np.zeros(texels.size * texels.size, np.float32)
    best[texels.index] = gathered.best_cosine
    best = best.reshape(texels.size, texels.size)
    same = repaint_mask(cameras[0], hits, uv, normals, best, first_depth, feather_pixels=0)
    assert same[covered].mean() < 0.1  # seen from here already: kept
    back = cameras[1]
    back_hits = rasterize(back, positions)
    _, back_depth = scenes.render_boxes(back, [CUBE])
    mask = repaint_mask(back, back_hits, uv, normals, best, back_depth, feather_pixels=2)
    assert mask[back_hits.covered].mean() > 0.9  # the back is new
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert ((mask > 0) & (mask < 1)).any()  # feathered
