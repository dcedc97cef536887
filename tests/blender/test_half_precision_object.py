"""Whole Object at Precision FP16 and BF16 through ``bpy.ops.latent_textures.generate()`` on the CPU: the GPU's
precisions rehearsed (the engine's every path at half precision: tests/engine/test_half_precision.py)."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE
from test_object_target import module, select, whole  # noqa: F401 - the fixture is used by name


@pytest.mark.parametrize(("precision", "dtype"), [("FP16", "float16"), ("BF16", "bfloat16")])
def test_whole_object_in_half_precision_bakes_finite_pixels(whole, precision, dtype):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.device, prefs.precision = "CPU", precision
    try:
        select(bpy.data.objects["Cube"])
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    finally:
        prefs.property_unset("device")
        prefs.property_unset("precision")
    recipe = whole.result_image["latent_textures"].to_dict()
    assert recipe["target"] == "OBJECT" and recipe["dtype"] == dtype and recipe["device"] == "cpu"
    assert len(recipe["views"]) == 3
    pixels = module("bridge.pixels").read_pixels(whole.result_image)[..., :3]
    assert pixels.shape == (256, 256, 3) and np.isfinite(pixels).all()
    assert pixels.std() > 0.01  # painted, not a flat fill
