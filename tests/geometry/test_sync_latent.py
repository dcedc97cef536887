"""SYNC's latent correspondence (geometry/latent_sync.py): nearest texels, unique reads, noise statistics."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import ViewCamera
from geometry.latent_sync import (LatentView, latent_surface, latent_texture_size, latent_view, render_nearest,
                                  texel_disagreement)

from geometry_frames import look_at, orthographic, perspective
from scenes import box_uv_mesh

LATENT = 32  # a 256 px view
# around the box, each seeing three faces, neighbours sharing two
EYES = [(5, 5, 3), (-5, 5, 3.5), (-5, -5, 3), (5, -5, 2.5), (0.5, 0.3, 7.5), (0.3, -0.6, -7.5)]


def _cube_views(count: int = 6):
    uv, positions, normals = box_uv_mesh()
    eyes = EYES
    surfaces = []
    for eye in eyes[:count]:
        camera = ViewCamera(look_at(eye, (0, 0, 0), up=(0, 0, 1) if abs(eye[2]) < 5 else (0, 1, 0)),
                            perspective(50.0, 36.0, LATENT, LATENT), LATENT, LATENT, False)
        surfaces.append(latent_surface(camera, positions, uv, corner_normals_world=normals))
    return surfaces


def test_the_size_rule_gives_every_view_unique_texel_reads_and_a_coarser_texture_would_not():
    surfaces = _cube_views()
    size = latent_texture_size(surfaces, 512)
    assert size >= 64 and size & (size - 1) == 0
    views = [latent_view(surface, size) for surface in surfaces]
    for view in views:
        assert view.visible.sum() > 100
        assert view.duplicate_reads() == 0
        assert len(np.unique(view.texel[view.visible])) == view.visible.sum()
    if size > 64:  # the rule only doubles when needed
        assert any(latent_view(surface, size // 2).duplicate_reads() for surface in surfaces)


def test_a_latent_texture_that_cannot_be_dense_enough_is_refused_by_name():
    surfaces = _cube_views(2)
    with pytest.raises(ValueError, match="texture_size"):
        latent_texture_size(surfaces, 64, maximum=16)
    with pytest.raises(ValueError, match="size"):
        latent_view(surfaces[0], 0)


def test_consistent_noise_is_standard_normal_over_the_object_in_every_view_and_shared_between_views():
    surfaces = _cube_views()
    size = latent_texture_size(surfaces, 512)
    views = [latent_view(surface, size) for surface in surfaces]
    rng = np.random.default_rng(3)
    channels = 4
    texture = rng.standard_normal((channels, size * size)).astype(np.float32)
    background = rng.standard_normal((len(views), channels, LATENT, LATENT)).astype(np.float32)
    noise = render_nearest(texture, views, background)
    assert noise.shape == background.shape
    for index, view in enumerate(views):
        on_object = noise[index][:, view.visible]
        count = on_object.size
        # unique texels -> independent N(0, 1) samples: mean within 5 standard errors, variance within 5 too
        assert abs(on_object.mean()) < 5 / np.sqrt(count)
        assert abs(on_object.var() - 1.0) < 5 * np.sqrt(2.0 / count)
        np.testing.assert_array_equal(noise[index][:, ~view.visible], background[index][:, ~view.visible])
        np.testing.assert_array_equal(on_object, texture[:, view.texel[view.visible]])
    # two views reading one texel start from exactly the same noise there
    shared = np.intersect1d(views[0].texel[views[0].visible], views[1].texel[views[1].visible])
    for texel in shared[:20]:
        a = noise[0][:, views[0].texel == texel][:, 0]
        b = noise[1][:, views[1].texel == texel][:, 0]
        np.testing.assert_array_equal(a, b)


def test_an_ortho_view_of_a_uv_plane_reads_each_texel_once_in_pixel_order_with_cos_one():
    # the plane z = 0 over [-1, 1]², UV = its xy mapped to [0, 1]; an ortho camera from +Z sees it 1:1
    positions = np.array([[[-1, -1, 0], [1, -1, 0], [1, 1, 0]], [[-1, -1, 0], [1, 1, 0], [-1, 1, 0]]], float)
    uv = (positions[..., :2] + 1) / 2
    size = 8
    camera = ViewCamera(look_at((0, 0, 3), (0, 0, 0), up=(0, 1, 0)), orthographic(2.0, size, size), size, size, True)
    view = latent_view(latent_surface(camera, positions, uv), size)
    np.testing.assert_array_equal(view.texel, np.arange(size * size).reshape(size, size))
    np.testing.assert_allclose(view.cosine, 1.0, atol=1e-6)


def _cube_scene(count: int = 6):
    """(cameras at latent size, depths, views, texels) of the box seen from ``count`` sides."""
    from geometry.latent_sync import LatentBake  # noqa: F401 (imported where used)
    from geometry.raster import rasterize
    from geometry.uv_raster import rasterize_uv_triangles

    uv, positions, normals = box_uv_mesh()
    eyes = EYES
    cameras = [ViewCamera(look_at(eye, (0, 0, 0), up=(0, 0, 1) if abs(eye[2]) < 5 else (0, 1, 0)),
                          perspective(50.0, 36.0, LATENT, LATENT), LATENT, LATENT, False) for eye in eyes[:count]]
    surfaces = [latent_surface(camera, positions, uv, corner_normals_world=normals) for camera in cameras]
    size = latent_texture_size(surfaces, 512)
    views = [latent_view(surface, size) for surface in surfaces]
    depths = [rasterize(camera, positions).depth for camera in cameras]
    hits = [rasterize(camera, positions) for camera in cameras]
    points = [np.einsum("hwc,hwcd->hwd", h.barycentric, positions[np.maximum(h.triangle, 0)]) for h in hits]
    return cameras, depths, views, rasterize_uv_triangles(uv, positions, normals, size), points


def test_the_gather_bake_hears_every_view_that_sees_a_texel_and_gives_a_smooth_field_back():
    from geometry.latent_sync import LatentBake

    cameras, depths, views, texels, points = _cube_scene()
    bake = LatentBake(cameras, depths, [[texels]], weight_exponent=1.0)
    assert bake.texels == views[0].texels
    # a smooth field over space, seen by every view where it looks: baked and rendered back, nearly itself
    field = [np.stack([np.sin(1.3 * p[..., 0] + 0.4 * p[..., 2]), np.cos(0.9 * p[..., 1]),
                       p[..., 2] * 0.3, np.sin(p[..., 0] - p[..., 1])], axis=-1).astype(np.float32) for p in points]
    colour, weight = bake(np.stack(field))
    assert colour.shape == (bake.texels, 4) and weight.shape == (bake.texels,)
    with pytest.raises(ValueError, match=f"latents of view 1 must be {LATENT} x {LATENT}"):
        bake(np.stack(field).reshape(len(views), 2 * LATENT, LATENT // 2, 4))  # as many pixels, another shape
    rendered = render_nearest(colour.T, views, np.stack(field).transpose(0, 3, 1, 2))
    coverage = []
    for index, view in enumerate(views):
        seen = view.visible & (weight[np.maximum(view.texel, 0)] > 0)
        coverage.append(seen.sum() / view.visible.sum())
        error = np.abs(rendered[index].transpose(1, 2, 0)[seen] - field[index][seen])
        assert error.mean() < 0.1
    # measured 0.80-0.86 at 32² latents (0.89-0.96 at 64²), the bottom view 0.50: one latent pixel along the
    # box's edges and its very oblique faces fail the RGB bake's depth-normal test at latent resolution
    assert min(coverage) > 0.45 and np.mean(coverage) > 0.75, coverage
    # every view paints its own constant: a texel mixes every view that sees its surface, not only the views
    # whose latent pixels happen to land in it
    constants = np.stack([np.full((LATENT, LATENT, 1), float(index), np.float32) for index in range(len(views))])
    colour, weight = bake(constants)
    rendered = render_nearest(colour.T, views, constants.transpose(0, 3, 1, 2))
    mixed = [float(np.mean(rendered[i, 0][view.visible] != i)) for i, view in enumerate(views)]
    assert min(mixed) > 0.3, mixed


def test_texel_disagreement_compares_the_views_only_where_they_read_the_same_texel():
    """Rendered from one latent texture the views agree exactly, whatever their background; a known offset on
    one view's shared pixels comes back as the mean over the shared pixels of every pair and channel."""
    surfaces = _cube_views(3)
    size = latent_texture_size(surfaces, 512)
    views = [latent_view(surface, size) for surface in surfaces]
    rng = np.random.default_rng(5)
    texture = rng.standard_normal((4, size * size)).astype(np.float32)
    background = rng.standard_normal((3, 4, LATENT, LATENT)).astype(np.float32)
    rendered = render_nearest(texture, views, background)
    assert texel_disagreement(views, rendered) == 0.0
    shifted = rendered.copy()
    shifted[2][:, views[2].visible] += 0.5  # view 3 off by 0.5 wherever it sees the box
    shared = [np.intersect1d(views[a].texel[views[a].visible], views[b].texel[views[b].visible]).size
              for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(shared) > 0  # every pair reads some texels in common
    expected = 0.5 * (shared[1] + shared[2]) / sum(shared)
    assert texel_disagreement(views, shifted) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="latents"):
        texel_disagreement(views, rendered[:2])
    apart = [LatentView(texel=np.where(np.arange(16).reshape(4, 4) < 8, i * 8 + np.arange(16).reshape(4, 4), -1),
                        cosine=np.ones((4, 4), np.float32), size=8) for i in (0, 1)]
    with pytest.raises(ValueError, match="share no texel"):
        texel_disagreement(apart, np.zeros((2, 4, 4, 4), np.float32))


def test_the_latent_bake_from_its_terms_built_once_is_the_gather_of_the_views():
    """LatentBake builds the gather's terms once (its weights are the geometry's) and each step only multiplies
    and sums: the same weighted means as gathering the views afresh (geometry.bake.gather_views, merge_gathered),
    within fp32 rounding of the same sums (the terms sum the four bilinear corners in another order), for two
    objects sharing the mesh (pooled) and a mesh whose texels pool extra surface points."""
    from geometry.bake import BakeView, gather_views, merge_gathered
    from geometry.latent_sync import LatentBake
    from geometry.uv_raster import rasterize_uv_triangles

    cameras, depths, views, texels, _ = _cube_scene()
    uv, positions, normals = box_uv_mesh()
    moved = rasterize_uv_triangles(uv, positions * 0.5 + np.array([0.3, 0.2, 0.1]), normals, texels.size)
    # the UV map drawn twice onto one tile: every texel also holds the second copy's surface point
    doubled = rasterize_uv_triangles(np.concatenate([uv, uv]), np.concatenate([positions, positions * 0.9]),
                                     np.concatenate([normals, normals]), texels.size)
    assert len(doubled.extra_owner) > 0
    latents = np.random.default_rng(3).normal(size=(len(cameras), LATENT, LATENT, 4)).astype(np.float32)
    for meshes in ([[texels, moved]], [[doubled]]):
        bake = LatentBake(cameras, depths, meshes, weight_exponent=2.0)
        colour, weight = bake(latents)
        bake_views = [BakeView(c, image, d) for c, image, d in zip(cameras, latents, depths)]
        expected = merge_gathered([gather_views(part, bake_views, bake.settings) for part in meshes[0]])
        index = meshes[0][0].index
        np.testing.assert_allclose(weight[index], expected.weight, rtol=1e-5)
        assert np.array_equal(weight[index] > 0, expected.weight > 0) and (weight > 0).sum() > 1000
        scale = float(np.abs(latents).max())
        np.testing.assert_allclose(colour[index], expected.colour, rtol=0, atol=1e-5 * scale)
