"""Reference images (IP-Adapter, issue 31) from Blender: the settings, the picture read through Blender's colour
management, refusals before anything runs, the recipe entry and Use This Image's Settings, the panel."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts
from recording_layout import RecordingLayout


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def rna(name):
    return bpy.types.Scene.bl_rna.properties["latent_textures"].fixed_type.properties[name]


def picture(name="wall", colour=(0.8, 0.3, 0.1), size=(16, 8), float_buffer=False):
    """A byte sRGB image (or a float one) of one colour with a brighter top row."""
    width, height = size
    image = bpy.data.images.new(name, width=width, height=height, alpha=True, float_buffer=float_buffer)
    pixels = np.empty((height, width, 4), dtype=np.float32)
    pixels[...] = (*colour, 1.0)
    pixels[-1] = (1.0, 1.0, 1.0, 1.0)  # Blender's last row is the picture's top row
    image.pixels.foreach_set(pixels.ravel())
    image.update()
    return image


def pictureless(name="missing"):
    """An image datablock whose file is gone: it has no pixels."""
    image = bpy.data.images.new(name, width=4, height=4)
    image.source = "FILE"
    image.filepath = "/no/such/folder/reference.png"
    image.reload()
    return image


# -- settings -----------------------------------------------------------------------


def test_the_contracts_reference_settings(settings):
    assert rna("reference_image").type == "POINTER" and rna("reference_image").fixed_type.identifier == "Image"
    assert settings.reference_image is None
    strength = rna("reference_strength")
    engine_default = module("engine.request").ReferenceSpec.__dataclass_fields__["strength"].default
    assert strength.type == "FLOAT" and (strength.hard_min, strength.hard_max) == (0.0, 1.0)
    assert settings.reference_strength == pytest.approx(0.6) == pytest.approx(engine_default)
    assert rna("reference_model").type == "STRING" and settings.reference_model == ""
    assert rna("reference_first_view").type == "BOOLEAN" and settings.reference_first_view is False


# -- the picture ----------------------------------------------------------------------


def test_a_byte_picture_reaches_the_engine_as_stored_top_row_first():
    image = picture()
    array = module("bridge.reference").reference_pixels(image)
    assert array.dtype == np.float32 and array.shape == (8, 16, 3) and array.flags.c_contiguous
    assert np.allclose(array[0], 1.0)  # the top row first
    assert np.abs(array[1:] - np.array([0.8, 0.3, 0.1], dtype=np.float32)).max() <= 0.5 / 255 + 1e-6


def test_a_float_picture_goes_through_colour_management():
    """A float (scene-linear) image reaches the adapter as display sRGB: linear 0.2 shows as ~0.484."""
    image = picture("linear", colour=(0.2, 0.2, 0.2), float_buffer=True)
    array = module("bridge.reference").reference_pixels(image)
    srgb = 1.055 * 0.2 ** (1 / 2.4) - 0.055  # the sRGB transfer function, as Blender's Standard view shows it
    assert abs(float(array[4, 4, 0]) - srgb) <= 1.5 / 255
    assert len(bpy.data.scenes) == 1  # the temporary colour scene is gone


def test_the_hash_follows_the_pixels_not_the_name():
    reference = module("bridge.reference")
    first = picture("a")
    same = picture("b")
    other = picture("c", colour=(0.1, 0.3, 0.8))
    assert reference.image_hash(first) == reference.image_hash(same) != reference.image_hash(other)


# -- refused before anything runs ---------------------------------------------------------


@pytest.fixture
def tiny(settings, tiny_sd_model):
    settings.model = str(tiny_sd_model)
    settings.prompt = "brick wall"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 7
    settings.target = "IMAGE"
    return settings


@pytest.mark.parametrize("target", ["IMAGE", "MATERIAL", "OBJECT"])
def test_a_reference_without_pixels_is_refused_and_nothing_changes(tiny, target):
    tiny.target = target
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    tiny.reference_image = pictureless()
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Reference Image 'missing' has no pixels"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and tiny.result_image is None


def test_an_upscale_with_a_reference_without_pixels_is_refused(tiny):
    source = picture("source", size=(64, 64))
    tiny.reference_image = pictureless()
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="has no pixels"):
        bpy.ops.latent_textures.upscale(image=source.name, factor=2, strength=0.0)
    assert datablock_counts() == before


# -- the panel ----------------------------------------------------------------------------


def draw(panel_name):
    log = []
    holder = type("PanelInstance", (), {"layout": RecordingLayout(log)})()
    getattr(bpy.types, panel_name).draw(holder, bpy.context)
    return log


@pytest.mark.parametrize("panel", ["VIEW3D_PT_latent_textures_reference", "IMAGE_PT_latent_textures_reference"])
def test_the_reference_panel_shows_picker_strength_model_and_cost(settings, panel):
    drawn = draw(panel)
    assert ("template_ID", "reference_image") in drawn
    assert {("prop", "reference_strength"), ("prop", "reference_model")} <= set(drawn)
    assert ("prop", "reference_first_view") not in drawn  # only for Whole Object Sequential
    assert not any(entry[0] == "label" and "Cost" in entry[1] for entry in drawn)  # off: no cost
    settings.reference_image = picture()
    labels = [entry[1] for entry in draw(panel) if entry[0] == "label"]
    assert any("image encoder runs once per run" in text for text in labels)
    assert any(text.startswith("SD 1.x: h94/IP-Adapter/models/ip-adapter_sd15") for text in labels)


def test_the_first_view_toggle_shows_for_whole_object_sequential(settings):
    settings.target, settings.object_method = "OBJECT", "SEQUENTIAL"
    assert ("prop", "reference_first_view") in draw("VIEW3D_PT_latent_textures_reference")
    settings.object_method = "GRID"
    assert ("prop", "reference_first_view") not in draw("VIEW3D_PT_latent_textures_reference")


def test_the_panel_says_a_picture_has_no_pixels(settings):
    settings.reference_image = pictureless()
    errors = [entry[1] for entry in draw("VIEW3D_PT_latent_textures_reference") if entry[0] == "label"
              and entry[2] == "ERROR"]
    assert errors and "no pixels" in errors[0]


# -- the recipe and Use This Image's Settings ------------------------------------------------


@pytest.fixture
def referenced(tiny, tiny_ip_adapter):
    """A generation with the reference 'wall' at 0.35 (the tiny IP-Adapter)."""
    tiny.reference_model = str(tiny_ip_adapter)
    tiny.reference_image = picture()
    tiny.reference_strength = 0.35
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    return tiny.result_image


def test_the_recipe_names_the_reference_and_hashes_its_pixels(referenced):
    entry = referenced["latent_textures"].to_dict()["reference"]
    assert entry["image"] == "wall"
    assert entry["sha256"] == module("bridge.reference").image_hash(bpy.data.images["wall"])
    assert entry["strength"] == pytest.approx(0.35)
    assert isinstance(entry["model"], str)


def test_use_this_images_settings_restores_the_reference(settings, referenced):
    settings.reference_image, settings.reference_strength, settings.reference_model = None, 0.9, "other/adapter"
    assert bpy.ops.latent_textures.use_image_settings(image=referenced.name) == {"FINISHED"}
    assert settings.reference_image == bpy.data.images["wall"]
    assert settings.reference_strength == pytest.approx(0.35)
    assert settings.reference_model == referenced["latent_textures"]["reference"]["model"]


def test_a_same_named_picture_with_other_pixels_is_not_taken(settings, referenced, capfd):
    wall = bpy.data.images["wall"]
    changed = np.full(wall.size[0] * wall.size[1] * 4, 0.5, dtype=np.float32)
    wall.pixels.foreach_set(changed)
    wall.update()
    settings.reference_image = None
    capfd.readouterr()
    assert bpy.ops.latent_textures.use_image_settings(image=referenced.name) == {"FINISHED"}
    assert settings.reference_image is None
    assert "not the reference it was made with" in capfd.readouterr().out


def test_a_reference_gone_from_the_file_is_said(settings, referenced, capfd):
    bpy.data.images.remove(bpy.data.images["wall"])
    capfd.readouterr()
    assert bpy.ops.latent_textures.use_image_settings(image=referenced.name) == {"FINISHED"}
    assert settings.reference_image is None
    assert "'wall' is not in this file" in capfd.readouterr().out


def test_an_image_made_without_a_reference_turns_it_off(tiny):
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    plain = tiny.result_image
    assert "reference" not in plain["latent_textures"]
    tiny.reference_image = picture()
    assert bpy.ops.latent_textures.use_image_settings(image=plain.name) == {"FINISHED"}
    assert tiny.reference_image is None
