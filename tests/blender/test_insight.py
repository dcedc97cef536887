"""Insight through the real ``bpy.ops``: filmstrip and attention maps on Generate, the comparison grid, token lines."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts
from test_panels import draw


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def tiny(settings, tiny_sd_model):
    settings.model = str(tiny_sd_model)
    settings.prompt = "red brick wall, moss"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 1234
    settings.target = "IMAGE"
    return settings


def insight_images(kind):
    return [i for i in bpy.data.images if "latent_textures" in i and i["latent_textures"].get("insight") == kind]


def test_generate_records_filmstrip_and_attention(tiny, tmp_path):
    tiny.record_filmstrip = True
    tiny.record_attention = True
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    result = tiny.result_image
    (filmstrip,) = insight_images("filmstrip")
    assert filmstrip.name == f"{result.name} filmstrip"
    recipe = filmstrip["latent_textures"].to_dict()
    assert recipe["frames"] == 2 and recipe["seed"] == 1234 and recipe["prompt"] == tiny.prompt
    attention = insight_images("attention")
    maps = [i["latent_textures"] for i in attention if not i["latent_textures"].get("overlay")]
    words = [m["token"] for m in sorted(maps, key=lambda m: m["token_positions"][0])]  # bpy.data sorts by name
    assert words == ["red", "brick", "wall", "moss"]
    for image in attention:
        assert image.packed_file is not None
    pixels = module("bridge.pixels")
    # The last filmstrip frame is the result, pixel for pixel (both 8-bit), at the sheet's top-left tiles.
    sheet = pixels.read_pixels(filmstrip)
    gap = 4
    left = gap + 64 * 2 + gap
    np.testing.assert_array_equal(sheet[gap : gap + 64, left : left + 64], pixels.read_pixels(result))

    # Ordinary packed images: they survive save and reload with their recipe.
    names = {i.name for i in insight_images("filmstrip") + attention}
    filmstrip_name = filmstrip.name
    path = str(tmp_path / "insight.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    reloaded = {i.name for i in bpy.data.images if "latent_textures" in i and "insight" in i["latent_textures"]}
    assert reloaded == names
    image = bpy.data.images[filmstrip_name]
    assert image.has_data or image.packed_file is not None
    assert tuple(image.size) == (sheet.shape[1], sheet.shape[0])


def test_recording_does_not_change_the_result(tiny):
    bpy.ops.latent_textures.generate()
    plain = np.array(tiny.result_image.pixels[:])
    tiny.record_attention = True
    tiny.record_filmstrip = True
    bpy.ops.latent_textures.generate()
    np.testing.assert_array_equal(np.array(tiny.result_image.pixels[:]), plain)


def test_attention_with_empty_prompt_changes_nothing(tiny):
    tiny.record_attention = True
    tiny.prompt = ""
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="record_attention needs a prompt"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


# --- comparison grid ---------------------------------------------------------------------------------


def cell(grid_pixels, recipe, index):
    top, left = recipe["cell_tops"][index], recipe["cell_lefts"][index]
    h, w = recipe["cell_height"], recipe["cell_width"]
    return grid_pixels[top : top + h, left : left + w]


def test_compare_cells_are_generate_results_bit_for_bit(tiny):
    before = datablock_counts()
    assert bpy.ops.latent_textures.compare(guidance="1, 7.5", schedulers="EULER, DDIM") == {"FINISHED"}
    (grid,) = insight_images("compare")
    recipe = grid["latent_textures"].to_dict()
    assert recipe["axis"] == "SCHEDULER" and list(recipe["guidance_values"]) == [1.0, 7.5]
    assert datablock_counts()["images"] == before["images"] + 1
    assert tiny.result_image is None  # a grid is not a texture
    pixels = module("bridge.pixels")
    grid_pixels = pixels.read_pixels(grid)
    index = 0
    for scheduler in ("EULER", "DDIM"):
        for guidance in (1.0, 7.5):
            tiny.scheduler, tiny.guidance_scale = scheduler, guidance
            assert bpy.ops.latent_textures.generate() == {"FINISHED"}
            np.testing.assert_array_equal(cell(grid_pixels, recipe, index), pixels.read_pixels(tiny.result_image))
            index += 1


def test_compare_step_counts_from_the_scene(tiny):
    tiny.compare_axis = "STEPS"
    tiny.compare_steps = "1, 2"
    tiny.compare_guidance = "3"
    tiny.use_random_seed = True
    assert bpy.ops.latent_textures.compare() == {"FINISHED"}
    (grid,) = insight_images("compare")
    recipe = grid["latent_textures"].to_dict()
    assert recipe["axis"] == "STEPS" and recipe["row_values"] == "1, 2" and len(recipe["cell_tops"]) == 2
    tiny.use_random_seed = False
    tiny.seed = recipe["seed"]
    tiny.steps, tiny.guidance_scale = 2, 3.0
    bpy.ops.latent_textures.generate()
    pixels = module("bridge.pixels")
    np.testing.assert_array_equal(cell(pixels.read_pixels(grid), recipe, 1), pixels.read_pixels(tiny.result_image))


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"schedulers": "EULER, WARP_DRIVE"}, "unknown: WARP_DRIVE"),
        ({"guidance": "1, lots"}, "'lots' is not one"),
        ({"guidance": "1, 45"}, "guidance values must be from 0 to 30"),
        ({"axis": "STEPS", "steps": "0"}, "steps values must be whole numbers"),
        ({"guidance": "1, 3, 7.5, 12, 20", "big": True}, "more than the 16384 pixels"),
    ],
)
def test_compare_bad_input_changes_nothing(tiny, arguments, match):
    if arguments.pop("big", False):
        tiny.width = tiny.height = 4096
    before = datablock_counts()
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.latent_textures.compare(**arguments)
    assert datablock_counts() == before


# --- panel -------------------------------------------------------------------------------------------


def test_token_lines_count_and_flag_ignored_words(tiny, tiny_sdxl_model):
    lines = module("bridge.prompt_tokens").token_lines(bpy.context, tiny)
    assert lines == [("Prompt: 5/75 tokens", "INFO")]  # red, brick, wall, ",", moss
    tiny.prompt = ", ".join(["red brick wall"] * 30) + ", zqfinal"
    tiny.model = str(tiny_sdxl_model)
    (line,) = module("bridge.prompt_tokens").token_lines(bpy.context, tiny)
    assert line[1] == "ERROR" and "(both encoders)" in line[0] and line[0].endswith("zqfinal")


@pytest.mark.parametrize("panel_name", ["VIEW3D_PT_latent_textures_insight", "IMAGE_PT_latent_textures_insight"])
def test_insight_panel(settings, panel_name):
    log = draw(panel_name)
    props = {entry[1] for entry in log if entry[0] == "prop"}
    assert {"record_filmstrip", "record_attention", "compare_guidance", "compare_schedulers"} <= props
    assert "compare_steps" not in props
    assert ("operator", "latent_textures.compare") in log
    assert any(entry[0] == "label" and "colours burn" in entry[1] for entry in log)
    settings.compare_axis = "STEPS"
    props = {entry[1] for entry in draw(panel_name) if entry[0] == "prop"}
    assert "compare_steps" in props and "compare_schedulers" not in props


def test_main_panel_shows_the_token_count(tiny):
    labels = [entry[1:] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] == "label"]
    assert ("Prompt: 5/75 tokens", "INFO") in labels
    tiny.model = "org/not-downloaded"
    labels = [entry[1:] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] == "label"]
    assert ("Token count: once the model is on disk", "INFO") in labels


def test_sharp_preview_preference_offline_falls_back(tiny, addon):
    """Live Preview = Sharp (TAESD), no tiny decoder on disk, offline: Generate works (headless: no previews)."""
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    bpy.ops.latent_textures.generate()
    plain = np.array(tiny.result_image.pixels[:])
    prefs.preview_decoder = "TAESD"
    try:
        assert module("bridge.requests").options_from_preferences(bpy.context).offline
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    finally:
        prefs.preview_decoder = "LINEAR"
    np.testing.assert_array_equal(np.array(tiny.result_image.pixels[:]), plain)
