"""The upscaler's tile layout, blend and resize (numpy + Pillow, no torch): the tiler adds nothing of its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiles(engine_api: Any) -> Any:
    import importlib

    return importlib.import_module(engine_api.__name__ + ".tiles")


def _pattern(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


@pytest.mark.parametrize("size", [64, 100, 512, 513, 1000, 2048])
@pytest.mark.parametrize("wrap", [False, True])
def test_axis_origins_cover_the_axis_with_at_least_the_overlap(tiles: Any, size: int, wrap: bool) -> None:
    origins, length = tiles.axis_origins(size, 512, 64, wrap)
    covered = np.zeros(size, dtype=int)
    for start in origins:
        index = np.arange(start, start + length)
        assert wrap or index[-1] < size
        covered[index % size] += 1
    assert (covered >= 1).all()
    if size > 512:
        ordered = sorted(origins)
        gaps = np.diff(ordered + ([ordered[0] + size] if wrap else []))
        assert (length - gaps >= 64).all(), (origins, length)


def test_bad_layout_arguments_name_what_is_wrong(tiles: Any) -> None:
    with pytest.raises(ValueError, match="overlap"):
        tiles.axis_origins(1000, 128, 128, False)
    with pytest.raises(ValueError, match="size and tile"):
        tiles.axis_origins(0, 128, 64, False)


@pytest.mark.parametrize("wrap_x, wrap_y", [(False, False), (True, False), (False, True), (True, True)])
def test_blend_weights_sum_to_one_everywhere(tiles: Any, wrap_x: bool, wrap_y: bool) -> None:
    layout = tiles.layout(300, 420, 128, 64, wrap_x, wrap_y)
    blend = tiles.TileBlend(300, 420, 1, wrap_x, wrap_y)
    for tile in layout:
        blend.add(tile, np.ones((tile.height, tile.width, 1)))
    normalised = blend.total[..., 0] / blend.weights
    np.testing.assert_allclose(normalised, 1.0, rtol=0, atol=1e-12)
    assert (blend.weights > 0).all()


@pytest.mark.parametrize("wrap_x, wrap_y", [(False, False), (True, True), (True, False)])
def test_tiled_redraw_of_an_exact_stand_in_equals_the_untiled_image(tiles: Any, wrap_x: bool, wrap_y: bool) -> None:
    """A stand-in that upsamples exactly (nearest) and redraws nothing: tiled output == untiled output."""
    source = _pattern(37, 53)
    untiled = tiles.resize(source, 4, wrap_x=wrap_x, wrap_y=wrap_y, method="NEAREST")
    np.testing.assert_array_equal(untiled, np.repeat(np.repeat(source, 4, axis=0), 4, axis=1))
    layout = tiles.layout(untiled.shape[0], untiled.shape[1], 64, 16, wrap_x, wrap_y)
    assert len(layout) > 4
    tiled = tiles.redraw(untiled, layout, lambda tile, pixels: pixels, wrap_x=wrap_x, wrap_y=wrap_y)
    np.testing.assert_allclose(tiled, untiled, rtol=0, atol=1e-6)


def test_a_tile_longer_than_a_wrapped_axis_is_blended_once_per_pixel(tiles: Any) -> None:
    image = _pattern(48, 200)
    layout = tiles.layout(48, 200, 64, 16, True, True)
    assert all(tile.height == 48 for tile in layout)  # the short axis is one whole-length tile
    out = tiles.redraw(image, layout, lambda tile, pixels: pixels, wrap_x=True, wrap_y=True)
    np.testing.assert_allclose(out, image, atol=1e-6)


@pytest.mark.parametrize("k", [1, 5, 13])
def test_wrapped_upscale_is_equivariant_to_rolling(tiles: Any, k: int) -> None:
    """Upscaling a texture rolled by k pixels == the upscaled texture rolled by factor x k (wrap mode)."""
    source = _pattern(24, 40, seed=3)
    factor = 2

    def upscale(image: np.ndarray) -> np.ndarray:
        big = tiles.resize(image, factor, wrap_x=True, wrap_y=True)
        layout = tiles.layout(big.shape[0], big.shape[1], 32, 16, True, True)
        return tiles.redraw(big, layout, lambda tile, pixels: np.sqrt(pixels), wrap_x=True, wrap_y=True)

    rolled_first = upscale(np.roll(source, (k, 2 * k), axis=(0, 1)))
    rolled_after = np.roll(upscale(source), (factor * k, factor * 2 * k), axis=(0, 1))
    np.testing.assert_allclose(rolled_first, rolled_after, atol=1e-5)


def test_unwrapped_lanczos_resize_keeps_a_smooth_gradient_and_the_range(tiles: Any) -> None:
    ramp = np.linspace(0, 1, 32, dtype=np.float32)
    image = np.stack([np.tile(ramp, (16, 1))] * 3, axis=-1)
    big = tiles.resize(image, 4, wrap_x=False, wrap_y=False)
    assert big.shape == (64, 128, 3)
    assert big.min() >= 0 and big.max() <= 1
    row = big[10, :, 0]
    assert np.all(np.diff(row[8:-8]) > 0)  # monotonic away from the borders


def test_resize_refuses_a_bad_factor_or_filter(tiles: Any) -> None:
    with pytest.raises(ValueError, match="factor"):
        tiles.resize(_pattern(8, 8), 0, wrap_x=False, wrap_y=False)
    with pytest.raises(ValueError, match="method"):
        tiles.resize(_pattern(8, 8), 2, wrap_x=False, wrap_y=False, method="BICUBIC")


def test_only_a_tile_spanning_a_whole_wrapped_axis_wraps_itself(tiles: Any) -> None:
    whole = tiles.Tile(0, 0, 0, 40, 96)
    part = tiles.Tile(1, 0, 16, 40, 64)
    assert tiles.own_wrap(whole, 40, 96, True, True) == "BOTH"
    assert tiles.own_wrap(whole, 40, 96, True, False) == "X"
    assert tiles.own_wrap(part, 40, 96, True, True) == "Y"  # spans the height only
    assert tiles.own_wrap(whole, 40, 96, False, False) == "NONE"


def test_padding_to_a_multiple_extends_the_edge_and_keeps_the_tile(tiles: Any) -> None:
    pixels = np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    padded = tiles.pad_to_multiple(pixels, 4)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[:5, :6], pixels)
    np.testing.assert_array_equal(padded[7, 7], pixels[4, 5])
    assert tiles.pad_to_multiple(padded, 8) is padded  # already a multiple: untouched
