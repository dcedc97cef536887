"""Colour matching between views (``geometry/color_match.py``, issue 31): the Oklab space, the two transfers on
known samples, and views of a box with a known colour cast matched on the surface they share."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.bake import BakeView
from geometry.camera import ViewCamera
from geometry.color_match import (MIN_SHARED_SAMPLES, PerceptualSpace, apply_transfer, fit_transfer, match_view,
                                  match_views)
from geometry.latent_sync import view_disagreement
from geometry.uv_raster import rasterize_uv_triangles

from geometry_frames import look_at, perspective
from scenes import box_uv_mesh, render_boxes

PIXELS = 96


def standard_srgb_space(entries: int = 4096) -> PerceptualSpace:
    """The space the bridge samples from Blender's colour management, built here from the sRGB standard itself
    (IEC 61966-2-1: the transfer curve and the Rec.709 primaries' XYZ matrix), independent of the code under test."""
    v = np.linspace(0.0, 1.0, entries)
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    return PerceptualSpace(linear, xyz)


SPACE = standard_srgb_space()


def test_oklab_of_white_and_of_srgb_red_are_the_published_values_and_the_round_trip_is_exact():
    white = SPACE.to_oklab(np.ones(3))
    assert white == pytest.approx([1.0, 0.0, 0.0], abs=2e-4)  # the matrices' published 10 digits, rounded XYZ
    # Ottosson's page: sRGB red is Oklab (0.627955, 0.224863, 0.125846); XYZ rounded to 4 digits moves it ~1e-4
    assert SPACE.to_oklab(np.array([1.0, 0.0, 0.0])) == pytest.approx([0.627955, 0.224863, 0.125846], abs=1e-3)
    rgb = np.random.default_rng(0).random((1000, 3))
    # a piecewise-linear table one way, a finer table of its inverse the other: within 1e-6 (the module's bound)
    assert np.abs(SPACE.to_srgb(SPACE.to_oklab(rgb)) - rgb).max() < 1e-6
    lightness = SPACE.to_oklab(np.linspace(0, 1, 11)[:, None].repeat(3, axis=1))[:, 0]
    assert np.all(np.diff(lightness) > 0)


def test_a_space_refuses_a_table_that_does_not_increase_and_a_singular_matrix():
    with pytest.raises(ValueError, match="srgb_to_linear"):
        PerceptualSpace(np.array([0.0, 0.5, 0.5, 1.0]), np.eye(3))
    with pytest.raises(ValueError, match="linear_to_xyz"):
        PerceptualSpace(np.linspace(0, 1, 4), np.zeros((3, 3)))


def test_reinhard_removes_an_affine_cast_per_channel_exactly():
    rng = np.random.default_rng(1)
    target = rng.normal([0.6, 0.02, -0.03], [0.1, 0.04, 0.05], size=(500, 3))
    scale, offset = np.array([1.3, 0.7, 1.5]), np.array([-0.08, 0.05, -0.02])
    source = target * scale + offset
    transfer = fit_transfer(source, target, rng.random(500) + 0.1, "REINHARD")
    # the weighted mean and deviation of an affine image of the samples are the affine image of theirs: the
    # fitted line is the cast's inverse, up to float64 rounding of sums of 500 terms
    assert np.abs(transfer(source) - target).max() < 1e-12 * 500


def test_histogram_maps_the_source_histogram_onto_the_target():
    rng = np.random.default_rng(2)
    source = rng.random((4000, 3)) * [0.8, 0.3, 0.3] + [0.1, -0.15, -0.15]
    target = np.stack([0.2 + 0.7 * source[:, 0] ** 2, np.tanh(3 * source[:, 1]) / 4, 0.1 - source[:, 2]], axis=1)
    target[:, 2] = 0.05 + 0.5 * source[:, 2] ** 3  # monotone casts per channel (a mirror is not a histogram's)
    transfer = fit_transfer(source, target, np.ones(4000), "HISTOGRAM")
    mapped = transfer(source)
    # quantile to quantile: the mapped histogram is the target's (16 bins over the target's range)
    for channel in range(3):
        bins = np.linspace(target[:, channel].min(), target[:, channel].max(), 17)
        expected, _ = np.histogram(target[:, channel], bins)
        got, _ = np.histogram(mapped[:, channel], bins)
        # a sample within one quantile step (1/256 of 4000 = 16 samples) of a bin edge may fall either side
        assert np.abs(got - expected).max() <= 4000 / 256
    # each sample to its own target: a monotone cast is undone up to linear interpolation between 256 quantiles
    # (the casts' slopes are below 3, the quantiles about 1/256 of the range apart)
    assert np.abs(mapped - target).max() < 3 * 1.0 / 256


def test_fit_transfer_names_its_bad_arguments():
    samples = np.zeros((4, 3))
    with pytest.raises(ValueError, match="method"):
        fit_transfer(samples, samples, np.ones(4), "MKL")
    with pytest.raises(ValueError, match="weight"):
        fit_transfer(samples, samples, np.zeros(4), "REINHARD")
    with pytest.raises(ValueError, match="source and target"):
        fit_transfer(samples, samples[:3], np.ones(4), "REINHARD")


def box_views(eyes, cast=None):
    uv, positions, normals = box_uv_mesh()
    texels = rasterize_uv_triangles(uv, positions, normals, 128)
    views = []
    for index, eye in enumerate(eyes):
        camera = ViewCamera(look_at(eye, (0, 0, 0)), perspective(35.0, 36.0, PIXELS, PIXELS), PIXELS, PIXELS, False)
        image, depth = render_boxes(camera, [((-1, -1, -1), (1, 1, 1), None)])
        if index and cast is not None:
            covered = np.isfinite(depth)
            image[covered] = cast(image[covered]).astype(np.float32)
        views.append(BakeView(camera, image, depth))
    return [[texels]], views


def oklab_cast(scale, offset):
    return lambda rgb: SPACE.to_srgb(SPACE.to_oklab(rgb) * scale + offset)


EYES = [(3.2, 3.2, 2.2), (-3.2, 3.4, 2.4), (-3.3, -3.1, 2.0)]


@pytest.mark.parametrize("method", ["REINHARD", "HISTOGRAM"])
def test_views_with_a_colour_cast_are_matched_to_the_first_on_the_surface_they_share(method):
    meshes, clean = box_views(EYES)
    cast = oklab_cast(np.array([0.9, 0.9, 0.9]), np.array([0.05, 0.01, -0.01]))
    _, views = box_views(EYES, cast)
    for view in views[1:]:  # the cast stays inside the sRGB gamut: nothing clipped, so it can be undone
        covered = view.image[np.isfinite(view.depth)]
        assert covered.min() > 0 and covered.max() < 1
    matched = match_views(meshes, views, method, SPACE)
    assert matched[0].transfer is None and np.array_equal(matched[0].image, views[0].image)
    assert all(result.transfer is not None for result in matched[1:])
    before = view_disagreement(meshes[0], views)
    after = view_disagreement(meshes[0], [BakeView(v.camera, m.image, v.depth) for v, m in zip(views, matched)])
    baseline = view_disagreement(meshes[0], clean)  # the same views without a cast: bilinear resampling only
    print(method, round(before, 5), round(after, 5), round(baseline, 5))
    # The cast is affine in Oklab: REINHARD fits its exact inverse on the shared samples, up to the samples being
    # bilinear in sRGB (so very slightly not affine in Oklab); HISTOGRAM fits it between quantiles. Either way
    # the disagreement falls from the cast's (about 0.05) to that of the uncast views plus the fit's residual.
    assert after < baseline + 0.25 * (before - baseline)
    for view, clean_view, result in zip(views[1:], clean[1:], matched[1:]):
        covered = np.isfinite(view.depth)
        residual = np.abs(result.image[covered] - clean_view.image[covered]).mean()
        assert residual < 0.2 * np.abs(view.image[covered] - clean_view.image[covered]).mean()


def test_a_view_sharing_no_surface_with_the_earlier_ones_is_left_unchanged():
    # straight at the box's +y and -y faces: no texel is seen by both
    meshes, views = box_views([(0.0, 5.0, 0.0), (0.0, -5.0, 0.0)], oklab_cast(np.ones(3), np.array([0.1, 0, 0])))
    matched = match_views(meshes, views, "REINHARD", SPACE)
    assert matched[1].transfer is None
    assert np.array_equal(matched[1].image, views[1].image)


def test_the_region_limits_the_samples_and_the_pixels_changed():
    meshes, views = box_views(EYES[:2], oklab_cast(np.ones(3), np.array([0.08, 0.0, 0.0])))
    earlier = match_views(meshes, views[:1], "REINHARD", SPACE)[0].alone
    nothing = match_view(meshes, earlier, views[1], "REINHARD", SPACE, region=np.zeros((PIXELS, PIXELS)))
    assert nothing.transfer is None and np.array_equal(nothing.image, views[1].image)
    region = np.zeros((PIXELS, PIXELS), np.float32)
    region[:, PIXELS // 2:] = 1.0
    region[:, PIXELS // 2 - 8:PIXELS // 2] = 0.5
    half = match_view(meshes, earlier, views[1], "REINHARD", SPACE, region=region)
    assert half.transfer is not None and half.transfer.samples >= MIN_SHARED_SAMPLES
    assert np.array_equal(half.image[:, :PIXELS // 2 - 8], views[1].image[:, :PIXELS // 2 - 8])
    covered = np.isfinite(views[1].depth)[:, PIXELS // 2:]
    changed = np.abs(half.image[:, PIXELS // 2:] - views[1].image[:, PIXELS // 2:]).max(axis=2)
    assert changed[covered].min() > 0
    # the blend: half way on the feathered columns
    full = apply_transfer(views[1].image, half.transfer, SPACE)
    band = slice(PIXELS // 2 - 8, PIXELS // 2)
    np.testing.assert_allclose(half.image[:, band], 0.5 * (views[1].image[:, band] + full[:, band]), atol=1e-6)
