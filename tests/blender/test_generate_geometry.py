"""Generate with geometry conditioning, inpainting and LoRAs, through ``bpy.ops.latent_textures.generate()``.

Tiny offline models (tools/tiny_models.py): a ControlNet built from the tiny UNet, a LoRA with
seeded weights, a 9-channel inpainting UNet. Every bad input leaves bpy.data as it was.
"""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def tiny(settings, tiny_sd_model):
    settings.model = str(tiny_sd_model)
    settings.prompt = "mossy stone"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 99
    settings.target = "IMAGE"
    return settings


@pytest.fixture
def controlled(tiny, tiny_controlnet):
    tiny.control = "DEPTH"
    tiny.control_model = str(tiny_controlnet)
    return tiny


def generate_pixels(settings) -> np.ndarray:
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    return module("bridge.pixels").read_pixels(settings.result_image)


def select_cube():
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    return cube


def expect_refused(match: str) -> None:
    before = datablock_counts()
    result_before = bpy.context.scene.latent_textures.result_image
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before
    assert bpy.context.scene.latent_textures.result_image == result_before


# -- control --------------------------------------------------------------------

@pytest.mark.parametrize("target", ["IMAGE", "MATERIAL", "PROJECT"])
@pytest.mark.parametrize("control", ["DEPTH", "NORMAL"])
def test_each_control_with_each_target(controlled, control, target):
    controlled.control = control
    controlled.target = target
    select_cube()
    before = datablock_counts()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    result = controlled.result_image
    recipe = result["latent_textures"].to_dict()
    assert recipe["control"] == control and recipe["control_strength"] == pytest.approx(1.0)
    assert recipe["control_model"] == str(controlled.control_model)
    kept = bpy.data.images[recipe["control_image"]]
    assert kept.name == f"{result.name} control" and kept.packed_file is not None and kept.use_fake_user
    # The kept image is what the model was conditioned on: the scene camera's geometry at the request size.
    expected = module("bridge.geometry").control_image(
        bpy.context.scene, bpy.context.evaluated_depsgraph_get(), control, 64, 64)
    np.testing.assert_allclose(module("bridge.pixels").read_pixels(kept)[..., :3], expected, atol=1 / 255 + 1e-6)
    assert expected.std() > 0.05  # the cube is in view: not a flat image
    assert datablock_counts()["images"] == before["images"] + 2


def test_control_with_img2img_from_an_image(controlled):
    controlled.mode = "IMG2IMG"
    controlled.source = "IMAGE"
    controlled.source_image = bpy.data.images.new("source", 64, 64)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    recipe = controlled.result_image["latent_textures"]
    assert recipe["mode"] == "IMG2IMG" and recipe["control"] == "DEPTH"


def test_strength_zero_gives_the_pixels_of_no_control(controlled):
    controlled.control_strength = 0.0
    without_effect = generate_pixels(controlled)
    controlled.control = "NONE"
    plain = generate_pixels(controlled)
    np.testing.assert_array_equal(without_effect, plain)
    controlled.control = "DEPTH"
    controlled.control_strength = 1.0
    assert np.abs(generate_pixels(controlled) - plain).max() > 0.02


def test_moving_the_object_changes_the_output_with_the_same_seed(controlled):
    first = generate_pixels(controlled)
    again = generate_pixels(controlled)
    np.testing.assert_array_equal(first, again)  # same recipe + seed on the CPU: identical pixels
    first_control = module("bridge.pixels").read_pixels(bpy.data.images[f"{controlled.result_image.name} control"])
    cube = bpy.data.objects["Cube"]
    cube.location = bpy.context.scene.camera.location * 0.5  # closer: it fills much more of the frame
    moved = generate_pixels(controlled)
    moved_control = module("bridge.pixels").read_pixels(bpy.data.images[f"{controlled.result_image.name} control"])
    assert (np.abs(moved_control - first_control) > 0.1).mean() > 0.1
    # The tiny ControlNet steers only slightly (a step or two of 8-bit), but steer it must.
    assert not np.array_equal(moved, first)


def test_control_without_a_camera_changes_nothing(controlled):
    bpy.context.scene.camera = None
    expect_refused("no camera")


def test_missing_controlnet_changes_nothing(controlled, tmp_path):
    controlled.control_model = str(tmp_path / "no-such-controlnet")
    expect_refused("no-such-controlnet")


def test_controlnet_of_another_family_changes_nothing(controlled, tiny_controlnet_sdxl):
    controlled.control_model = str(tiny_controlnet_sdxl)
    expect_refused("SDXL")


# -- inpainting -----------------------------------------------------------------

def _pattern_image(name: str, alpha: np.ndarray | None = None) -> bpy.types.Image:
    ramp = np.linspace(0.1, 0.9, 64, dtype=np.float32)
    rgba = np.ones((64, 64, 4), dtype=np.float32)
    rgba[..., 0] = ramp[None, :]
    rgba[..., 1] = ramp[:, None]
    rgba[..., 2] = 0.3
    if alpha is not None:
        rgba[..., 3] = alpha
    image = bpy.data.images.new(name, 64, 64, alpha=True)
    module("bridge.pixels").write_pixels(image, rgba)
    return image


def _mask_image(name: str, white: np.ndarray) -> bpy.types.Image:
    height, width = white.shape
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = white[..., None].astype(np.float32)
    image = bpy.data.images.new(name, width, height)
    module("bridge.pixels").write_pixels(image, rgba)
    return image


@pytest.fixture
def inpainting(tiny):
    tiny.mode = "INPAINT"
    tiny.source = "IMAGE"
    tiny.strength = 1.0
    tiny.mask_blur = 0
    tiny.source_image = _pattern_image("source")
    return tiny


@pytest.mark.parametrize("mask_size", [64, 32])
def test_inpaint_keeps_unmasked_pixels(inpainting, mask_size):
    """Outside the mask the source comes back as it was (8-bit quantisation aside); a smaller mask is stretched."""
    white = np.zeros((mask_size, mask_size), dtype=bool)
    white[:, : mask_size // 2] = True  # repaint the left half
    inpainting.mask_image = _mask_image("mask", white)
    result = generate_pixels(inpainting)
    source = module("bridge.pixels").read_pixels(inpainting.source_image)
    np.testing.assert_allclose(result[:, 33:, :3], source[:, 33:, :3], atol=1 / 255 + 1e-6)
    assert np.abs(result[:, :31, :3] - source[:, :31, :3]).max() > 0.05
    recipe = inpainting.result_image["latent_textures"]
    assert recipe["mode"] == "INPAINT" and recipe["mask_image"] == "mask"


def test_inpaint_without_a_mask_repaints_where_the_source_is_transparent(inpainting):
    alpha = np.ones((64, 64), dtype=np.float32)
    alpha[:32] = 0.0  # the top half is transparent
    inpainting.source_image = _pattern_image("holey", alpha)
    result = generate_pixels(inpainting)
    source = module("bridge.pixels").read_pixels(inpainting.source_image)
    np.testing.assert_allclose(result[33:, :, :3], source[33:, :, :3], atol=1 / 255 + 1e-6)
    assert np.abs(result[:31, :, :3] - source[:31, :, :3]).max() > 0.05
    assert inpainting.result_image["latent_textures"]["mask_image"] == ""


def test_inpaint_with_a_dedicated_inpainting_model(inpainting, tiny_inpaint_model):
    inpainting.model = str(tiny_inpaint_model)
    white = np.zeros((64, 64), dtype=bool)
    white[20:44, 20:44] = True
    inpainting.mask_image = _mask_image("mask", white)
    result = generate_pixels(inpainting)
    source = module("bridge.pixels").read_pixels(inpainting.source_image)
    np.testing.assert_allclose(result[:18, :, :3], source[:18, :, :3], atol=1 / 255 + 1e-6)


def test_inpaint_with_control(inpainting, tiny_controlnet):
    inpainting.control = "DEPTH"
    inpainting.control_model = str(tiny_controlnet)
    white = np.zeros((64, 64), dtype=bool)
    white[:, :32] = True
    inpainting.mask_image = _mask_image("mask", white)
    result = generate_pixels(inpainting)
    source = module("bridge.pixels").read_pixels(inpainting.source_image)
    np.testing.assert_allclose(result[:, 33:, :3], source[:, 33:, :3], atol=1 / 255 + 1e-6)
    assert inpainting.result_image["latent_textures"]["control"] == "DEPTH"


def test_empty_mask_changes_nothing(inpainting):
    inpainting.mask_image = _mask_image("mask", np.zeros((64, 64), dtype=bool))
    expect_refused("empty")


def test_opaque_source_without_a_mask_changes_nothing(inpainting):
    expect_refused("empty")


def test_camera_source_needs_a_mask(inpainting):
    inpainting.source = "CAMERA"
    expect_refused("Mask image")


# -- LoRAs ----------------------------------------------------------------------

def test_lora_on_changes_pixels_and_off_restores_them(tiny, tiny_lora):
    plain = generate_pixels(tiny)
    assert bpy.ops.latent_textures.lora_add(filepath=str(tiny_lora), weight=1.0) == {"FINISHED"}
    with_lora = generate_pixels(tiny)
    assert np.abs(with_lora - plain).max() > 0.02
    recipe = tiny.result_image["latent_textures"].to_dict()
    assert len(recipe["loras"]) == 1 and recipe["loras"][0]["weight"] == pytest.approx(1.0)
    tiny.loras[0].enabled = False
    np.testing.assert_array_equal(generate_pixels(tiny), plain)
    assert tiny.result_image["latent_textures"].to_dict()["loras"] == []


def test_lora_of_another_family_changes_nothing(tiny, tiny_lora_sdxl):
    bpy.ops.latent_textures.lora_add(filepath=str(tiny_lora_sdxl))
    expect_refused("SD1")


def test_pickled_lora_changes_nothing(tiny, tmp_path):
    pickled = tmp_path / "style.bin"
    pickled.write_bytes(b"\x80\x04not really a pickle")
    bpy.ops.latent_textures.lora_add(filepath=str(pickled))
    expect_refused("pickle|\\.bin|safetensors")
