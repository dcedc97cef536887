"""The pixel bridge: Blender image <-> numpy, orientation exact, round trip within 1/255."""

import sys

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE


@pytest.fixture
def pixels():
    return sys.modules[f"{ADDON_MODULE}.bridge.pixels"] if f"{ADDON_MODULE}.bridge.pixels" in sys.modules \
        else __import__(f"{ADDON_MODULE}.bridge.pixels", fromlist=["pixels"])


def asymmetric_pattern(height=6, width=10):
    """Every pixel distinct, top-left red-ish, so a flip or transpose cannot pass."""
    rng = np.random.default_rng(7)
    array = rng.random((height, width, 4), dtype=np.float32)
    array[0, 0] = (1.0, 0.0, 0.0, 1.0)
    array[-1, -1] = (0.0, 0.0, 1.0, 1.0)
    array[..., 3] = 1.0
    return array


def test_byte_image_round_trip_within_one_step(pixels):
    array = asymmetric_pattern()
    image = pixels.new_display_image("pattern", array)
    assert not image.is_float and image.colorspace_settings.name == "sRGB"
    back = pixels.read_pixels(image)
    assert back.shape == array.shape and back.dtype == np.float32
    assert np.abs(back - array).max() <= 1 / 255 + 1e-6


def test_top_row_first_orientation(pixels):
    array = asymmetric_pattern()
    image = pixels.new_display_image("orientation", array)
    raw = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(raw)
    blender_rows = raw.reshape(6, 10, 4)
    # Blender's first stored row is the bottom of the picture.
    np.testing.assert_allclose(blender_rows[-1, 0], [1, 0, 0, 1], atol=1 / 255)
    np.testing.assert_allclose(blender_rows[0, -1], [0, 0, 1, 1], atol=1 / 255)


def test_rgb_array_gets_opaque_alpha(pixels):
    image = bpy.data.images.new("rgb", 4, 3, alpha=True)
    pixels.write_pixels(image, np.full((3, 4, 3), 0.5, dtype=np.float32))
    assert np.all(pixels.read_pixels(image)[..., 3] == 1.0)


def test_wrong_shape_is_refused(pixels):
    image = bpy.data.images.new("small", 4, 3)
    with pytest.raises(ValueError, match=r"shape \(3, 4, 3\|4\)"):
        pixels.write_pixels(image, np.zeros((4, 3, 4), dtype=np.float32))


def test_float_linear_image_reads_as_display_srgb(pixels):
    """A scene-linear float image goes through Blender's colour management (Standard view)."""
    image = bpy.data.images.new("linear", 4, 2, alpha=True, float_buffer=True)
    linear = np.zeros((2, 4, 4), dtype=np.float32)
    linear[..., :3] = np.array([0.0, 0.2140, 1.0], dtype=np.float32)  # sRGB 0, ~0.5, 1
    linear[..., 3] = 1.0
    pixels.write_pixels(image, linear)
    display = pixels.read_display_pixels(image)
    np.testing.assert_allclose(display[0, 0, :3], [0.0, 0.5, 1.0], atol=2 / 255)
    assert "latent_textures_colour" not in bpy.data.scenes  # temporary scene removed
    assert len([i for i in bpy.data.images if i.name.startswith("display")]) == 0


def test_display_read_leaves_no_datablocks(pixels):
    image = bpy.data.images.new("linear2", 8, 8, float_buffer=True)
    before = (len(bpy.data.images), len(bpy.data.scenes))
    pixels.read_display_pixels(image)
    assert (len(bpy.data.images), len(bpy.data.scenes)) == before


def test_resize_stretches_and_keeps_orientation(pixels):
    array = np.zeros((2, 4, 3), dtype=np.float32)
    array[0, :2] = 1.0  # top-left quarter white
    resized = pixels.resize(array, 8, 16)
    assert resized.shape == (8, 16, 3)
    assert resized[0, 0, 0] == 1.0 and resized[-1, -1, 0] == 0.0
    assert resized[:4, :8].mean() > 0.8 and resized[4:, 8:].mean() < 0.2


def test_shrinking_a_source_image_averages_fine_patterns(pixels):
    """img2img from a large Image: a 1-in-3 stripe pattern shrunk 8x is its mean (1/3), not moiré."""
    capture = __import__(f"{ADDON_MODULE}.bridge.capture", fromlist=["capture"])
    bpy.context.scene.view_settings.view_transform = "Standard"
    pattern = np.zeros((512, 512, 4), dtype=np.float32)
    pattern[:, ::3, :3] = 1.0  # every third column white
    pattern[..., 3] = 1.0
    image = pixels.new_display_image("stripes", pattern)
    shrunk = capture.capture_image(image, 64, 64)
    assert shrunk.shape == (64, 64, 3)
    white = 172 / 512  # the share of white columns
    assert np.abs(shrunk - white).max() < 0.03, (shrunk.min(), shrunk.max())
    # Enlarging stays bilinear: a step stays a step in the middle, smooth only at the edge.
    step = np.zeros((2, 2, 3), dtype=np.float32)
    step[:, 1] = 1.0
    big = pixels.resize(step, 2, 8)
    np.testing.assert_allclose(big[0], [[0] * 3, [0] * 3, [0.125] * 3, [0.375] * 3, [0.625] * 3, [0.875] * 3,
                                        [1] * 3, [1] * 3], atol=1e-6)
