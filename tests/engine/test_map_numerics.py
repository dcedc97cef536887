"""The numerics of material maps (engine/map_numerics.py), numpy only: exact cases built by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def numerics(engine_api: Any) -> Any:
    import importlib

    return importlib.import_module(engine_api.__name__ + ".map_numerics")


def _height_field(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A periodic, band-limited height (pixels) and its analytic derivatives along x (columns) and down the rows."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ax, ay = 2 * np.pi / width, 2 * np.pi / height
    h = 3.0 * np.sin(2 * ax * x) + 2.0 * np.cos(3 * ay * y) + 1.5 * np.sin(ax * x + 2 * ay * y)
    dx = 6.0 * ax * np.cos(2 * ax * x) + 1.5 * ax * np.cos(ax * x + 2 * ay * y)
    drow = -6.0 * ay * np.sin(3 * ay * y) + 3.0 * ay * np.cos(ax * x + 2 * ay * y)
    return h, dx, drow


def _normals(dx: np.ndarray, drow: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals (X right, Y up, Z to the viewer) of z = h: (-dh/dx, -dh/dy_up, 1), dy_up = -drow."""
    n = np.stack([-dx, drow, np.ones_like(dx)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _normalised(h: np.ndarray) -> np.ndarray:
    return (h - h.min()) / (h.max() - h.min())


def test_height_from_analytic_normals_of_a_periodic_field_comes_back_exactly(numerics: Any) -> None:
    h, dx, drow = _height_field(48, 64)
    height, span = numerics.height_from_normals(_normals(dx, drow).astype(np.float32), wrap_x=True, wrap_y=True)
    # The field is band-limited and periodic: the spectral integral is exact up to float32 normals (~1e-7
    # relative, times the span of a few pixels).
    np.testing.assert_allclose(height, _normalised(h), atol=1e-5)
    assert span == pytest.approx(h.max() - h.min(), rel=1e-5)


def test_height_integration_mirrors_unwrapped_axes(numerics: Any) -> None:
    """A non-periodic ramp + bump, no wrap: mirroring keeps it (a periodic solve would bend the ramp)."""
    y, x = np.mgrid[0:40, 0:56].astype(np.float64)
    h = 0.2 * x + 4.0 * np.exp(-((x - 20) ** 2 + (y - 22) ** 2) / 60.0)
    drow, dx = np.gradient(h)
    normals = _normals(dx, drow).astype(np.float32)
    mirrored, _ = numerics.height_from_normals(normals, wrap_x=False, wrap_y=False)
    wrapped, _ = numerics.height_from_normals(normals, wrap_x=True, wrap_y=True)
    error_mirrored = np.abs(mirrored - _normalised(h)).max()
    # Central differences and a half-pixel mirror: a few percent at the edges, against a ramp destroyed by wrapping.
    assert error_mirrored < 0.05
    assert np.abs(wrapped - _normalised(h)).max() > 4 * error_mirrored


def test_flat_normals_give_a_flat_height(numerics: Any) -> None:
    flat = np.zeros((16, 16, 3), np.float32)
    flat[..., 2] = 1.0
    height, span = numerics.height_from_normals(flat, wrap_x=True, wrap_y=False)
    assert span == 0.0 and not height.any()


def test_resample_keeps_a_wrapped_axis_a_torus(numerics: Any) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((24, 40, 3)).astype(np.float32)
    # 40 -> 30 columns: rolling the input by 4 columns rolls the output by 3.
    out = numerics.resample(image, 36, 30, wrap_x=True, wrap_y=False)
    rolled = numerics.resample(np.roll(image, 4, axis=1), 36, 30, wrap_x=True, wrap_y=False)
    np.testing.assert_allclose(rolled, np.roll(out, 3, axis=1), atol=1e-6)
    # Unwrapped: the edges are clamped, so the same roll does not commute.
    clamped = numerics.resample(image, 36, 30, wrap_x=False, wrap_y=False)
    clamped_rolled = numerics.resample(np.roll(image, 4, axis=1), 36, 30, wrap_x=False, wrap_y=False)
    assert np.abs(clamped_rolled - np.roll(clamped, 3, axis=1)).max() > 0.05


def test_resample_matrix_rows_sum_to_one_and_a_constant_stays(numerics: Any) -> None:
    for size_in, size_out, wrap in ((10, 3, True), (7, 20, False), (64, 64, True), (5, 1, False)):
        matrix = numerics.resample_matrix(size_in, size_out, wrap)
        assert matrix.shape == (size_out, size_in) and (matrix >= 0).all()
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    constant = np.full((9, 13), 0.25, np.float32)
    np.testing.assert_allclose(numerics.resample(constant, 4, 30, wrap_x=True, wrap_y=False), 0.25, atol=1e-7)


def test_processing_size_keeps_the_aspect_in_multiples(numerics: Any) -> None:
    assert numerics.processing_size(1024, 1024, 768, 64) == (768, 768)
    assert numerics.processing_size(512, 1024, 768, 64) == (384, 768)
    assert numerics.processing_size(48, 80, 64, 16) == (32, 64)
    assert numerics.processing_size(10, 2000, 768, 64) == (64, 768)  # never below one multiple
    assert numerics.processing_size(100, 60, 0, 16) == (96, 64)  # 0: the image's own size, rounded


def test_target_channels_follow_target_properties(numerics: Any, tiny_models: Any) -> None:
    channels = numerics.target_channels(tiny_models.MARIGOLD_APPEARANCE_TARGETS)
    assert channels == {"albedo": (0, None, "srgb"), "roughness": (1, 0, "linear"), "metallicity": (1, 1, "linear")}
    swapped = {**tiny_models.MARIGOLD_APPEARANCE_TARGETS, "target_names": ["material", "albedo"],
               "material": {"prediction_space": "stack", "sub_target_names": [None, "metallicity", "roughness"]}}
    assert numerics.target_channels(swapped) == {
        "metallicity": (0, 1, "linear"), "roughness": (0, 2, "linear"), "albedo": (1, None, "srgb")}
    with pytest.raises(ValueError, match="target_names"):
        numerics.target_channels({"albedo": {}})


def test_match_chroma_keeps_the_albedo_luminance_and_takes_the_lit_chroma(numerics: Any) -> None:
    lit = np.array([[[0.8, 0.3, 0.1], [0.2, 0.5, 0.9], [0.001, 0.002, 0.0]]], np.float32)
    grey_albedo = np.array([[[0.5, 0.5, 0.5], [0.3, 0.3, 0.3], [0.6, 0.4, 0.4]]], np.float32)
    out = numerics.match_chroma(grey_albedo, lit)
    luma = np.array([0.2126, 0.7152, 0.0722])
    out_linear, lit_linear = numerics.srgb_to_linear(out), numerics.srgb_to_linear(lit)
    albedo_linear = numerics.srgb_to_linear(grey_albedo)
    # Bright pixels: the albedo's luminance, the lit pixel's chromaticity (exactly, in gamut).
    for i in (0, 1):
        assert out_linear[0, i] @ luma == pytest.approx(albedo_linear[0, i] @ luma, rel=1e-5)
        np.testing.assert_allclose(out_linear[0, i] / (out_linear[0, i] @ luma),
                                   lit_linear[0, i] / (lit_linear[0, i] @ luma), rtol=1e-4)
    # A nearly black lit pixel's chroma is not trusted: the albedo's own is kept (mostly).
    own = albedo_linear[0, 2] / (albedo_linear[0, 2] @ luma)
    got = out_linear[0, 2] / (out_linear[0, 2] @ luma)
    assert np.abs(got - own).max() < np.abs(lit_linear[0, 2] / (lit_linear[0, 2] @ luma) - own).max()
    # A grey lit image gives a grey albedo; and sRGB round trips.
    grey = numerics.match_chroma(np.full((1, 1, 3), 0.4, np.float32), np.full((1, 1, 3), 0.7, np.float32))
    np.testing.assert_allclose(grey, 0.4, atol=1e-6)
    ramp = np.linspace(0, 1, 11)
    np.testing.assert_allclose(numerics.linear_to_srgb(numerics.srgb_to_linear(ramp)), ramp, atol=1e-12)


def test_large_maps_are_integrated_at_the_capped_size_and_keep_their_span(numerics: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Above ``MAX_HEIGHT_SIDE`` the height is integrated smaller and resampled: for a smooth field the same
    height (to the resampling's error) and the same span in full-size pixels."""
    h, dx, drow = _height_field(96, 128)
    normals = _normals(dx, drow).astype(np.float32)
    full, span = numerics.height_from_normals(normals, wrap_x=True, wrap_y=True)
    monkeypatch.setattr(numerics, "MAX_HEIGHT_SIDE", 64)
    capped, capped_span = numerics.height_from_normals(normals, wrap_x=True, wrap_y=True)
    assert capped.shape == (96, 128)
    assert np.abs(capped - full).max() < 0.02
    assert capped_span == pytest.approx(span, rel=0.03)
