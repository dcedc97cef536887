"""``bpy.ops.latent_textures.upscale()`` in background mode with the tiny model: size, recipe, wiring, refusals."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def configure(settings, model, **values):
    """The tiny ``model``, 64x64, 2 steps, a fixed seed, then ``values``."""
    values = {"model": str(model), "width": 64, "height": 64, "steps": 2, "use_random_seed": False, **values}
    for name, value in values.items():
        setattr(settings, name, value)


def _upscale_after(settings, tiny_sd_model, **upscale):
    """Upscale After Generate x2 of a 64x64 image result, seed 9."""
    configure(settings, tiny_sd_model, prompt="bark", seed=9, target="IMAGE", upscale_after="2", **upscale)


@pytest.fixture
def generated(settings, tiny_sd_model):
    """A 64x64 result on the cube's material, generated with the tiny model (seamless along X)."""
    configure(settings, tiny_sd_model, prompt="mossy stone", seed=5, seamless="X", target="MATERIAL")
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    return settings.result_image


def test_strength_zero_is_the_lanczos_resize_with_the_source_recipe_plus_upscale(settings, generated):
    source_pixels = module("bridge.pixels").read_display_pixels(generated)[..., :3]
    before = datablock_counts()
    assert bpy.ops.latent_textures.upscale(factor=2, strength=0.0) == {"FINISHED"}
    image = settings.result_image
    assert image != generated and image.name == f"{generated.name} x2"
    assert tuple(image.size) == (128, 128) and image.packed_file is not None
    recipe = image["latent_textures"].to_dict()
    assert recipe["prompt"] == "mossy stone" and recipe["seamless"] == "X"  # the source's recipe kept
    assert recipe["upscale"]["factor"] == 2 and recipe["upscale"]["source"] == generated.name
    assert recipe["upscale"]["strength"] == 0.0 and recipe["upscale"]["method"] == "LANCZOS"
    assert recipe["width"] == recipe["height"] == 128
    tiles = module("engine.tiles")
    expected = tiles.resize(source_pixels, 2, wrap_x=True, wrap_y=False)  # AUTO followed the recipe: X
    got = module("bridge.pixels").read_pixels(image)[..., :3]
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6
    after = datablock_counts()
    assert after["images"] == before["images"] + 1
    material = bpy.data.objects["Cube"].active_material
    assert any(n.type == "TEX_IMAGE" and n.image == generated for n in material.node_tree.nodes)  # not replaced


def test_replace_in_materials_puts_the_upscaled_image_where_the_source_was(settings, generated):
    assert bpy.ops.latent_textures.upscale(factor=2, strength=0.0, replace_in_material=True) == {"FINISHED"}
    material = bpy.data.objects["Cube"].active_material
    images = {n.image for n in material.node_tree.nodes if n.type == "TEX_IMAGE"}
    assert settings.result_image in images and generated not in images


def test_any_image_without_a_recipe_can_be_upscaled_and_a_wrap_it_was_not_made_for_is_said(settings):
    image = bpy.data.images.new("photo", 40, 24, alpha=True)
    image.pixels.foreach_set(np.random.default_rng(1).random(40 * 24 * 4, dtype=np.float32))
    assert bpy.ops.latent_textures.upscale(image="photo", factor=4, strength=0.0, seamless="BOTH") == {"FINISHED"}
    result = settings.result_image
    assert tuple(result.size) == (160, 96)
    assert result["latent_textures"].to_dict()["upscale"]["seamless"] == "BOTH"


def test_bad_inputs_change_nothing(settings):
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="No result image yet to upscale"):
        bpy.ops.latent_textures.upscale()
    with pytest.raises(RuntimeError, match="No image named 'nope'"):
        bpy.ops.latent_textures.upscale(image="nope")
    wide = bpy.data.images.new("wide", 4200, 8)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="largest factor that fits is x2"):
        bpy.ops.latent_textures.upscale(image=wide.name, factor=4, strength=0.0)
    with pytest.raises(RuntimeError, match="factor must be one of 2, 4"):
        bpy.ops.latent_textures.upscale(image=wide.name, factor=3, strength=0.0)
    assert datablock_counts() == before


def test_detail_pass_redraws_tiles_deterministically_and_cancel_leaves_nothing(
        settings, generated, tiny_tile_controlnet):
    before = datablock_counts()
    # 96-px tiles with the 64-px least overlap: 2 x 4 tiles over the 128 x 128 result (X wraps)
    options = {"factor": 2, "strength": 0.5, "control_model": str(tiny_tile_controlnet), "tile_size": 96}
    assert bpy.ops.latent_textures.upscale(**options) == {"FINISHED"}
    first = settings.result_image
    recipe = first["latent_textures"].to_dict()["upscale"]
    assert recipe["method"] == "TILED_DIFFUSION" and recipe["control"] == "TILE" and recipe["tiles"] == 8
    first_pixels = module("bridge.pixels").read_pixels(first)
    assert bpy.ops.latent_textures.upscale(image=generated.name, **options) == {"FINISHED"}
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(settings.result_image), first_pixels)
    assert datablock_counts()["images"] == before["images"] + 2

    # Cancelled (as ESC does) through the modal path's job: nothing is written.
    upscale_module = module("bridge.upscale")
    before = datablock_counts()
    plan = upscale_module.prepare(bpy.context, generated.name, 2, "AUTO", 0.5, False,
                                  control_model=str(tiny_tile_controlnet), tile_size=96)
    run = upscale_module.UpscaleRun(plan)
    run.job.cancel()
    run.run_here()
    assert run.tick(bpy.context) == "CANCELLED"
    assert datablock_counts() == before


def test_upscale_after_generate_writes_the_upscaled_result_with_both_recipes(
        settings, tiny_sd_model, tiny_tile_controlnet):
    _upscale_after(settings, tiny_sd_model, upscale_strength=0.5, upscale_control_model=str(tiny_tile_controlnet))
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    image = settings.result_image
    assert tuple(image.size) == (128, 128)
    recipe = image["latent_textures"].to_dict()
    assert recipe["prompt"] == "bark" and recipe["seed"] == 9 and recipe["steps"] == 2  # the generation's
    assert recipe["upscale"]["factor"] == 2 and recipe["upscale"]["control"] == "TILE"
    assert recipe["upscale"]["control_model"] == str(tiny_tile_controlnet)


def test_upscale_after_generate_too_large_is_refused_before_anything_runs(settings, tiny_sd_model, monkeypatch):
    monkeypatch.setattr(module("engine.upscale"), "_machine_memory", lambda: 8 * 2**30)  # x4 of 2048² needs ~5 GB
    settings.model = str(tiny_sd_model)
    settings.prompt = "bark"
    settings.width = settings.height = 2048
    settings.target = "IMAGE"
    settings.upscale_after = "4"
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="largest factor that fits is x2"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


def test_the_x4_upscaler_method_paints_the_result_large_and_records_it(settings, generated, tiny_x4_upscaler):
    before = datablock_counts()
    # 128-px output tiles (32 px in) with 64 px (16 in) of overlap over the 64x64 result: 3 rows x 4 columns (X wraps)
    options = {"factor": 4, "method": "X4_UPSCALER", "upscaler_model": str(tiny_x4_upscaler), "noise_level": 30,
               "tile_size": 128}
    assert bpy.ops.latent_textures.upscale(**options) == {"FINISHED"}
    image = settings.result_image
    assert tuple(image.size) == (256, 256) and image.packed_file is not None
    recipe = image["latent_textures"].to_dict()
    upscale = recipe["upscale"]
    assert upscale["method"] == "X4_UPSCALER" and upscale["upscaler_model"] == str(tiny_x4_upscaler)
    assert upscale["noise_level"] == 30 and upscale["control"] == "NONE" and upscale["seamless"] == "X"
    assert upscale["tiles"] == 12 and upscale["source"] == generated.name and recipe["prompt"] == "mossy stone"
    pixels = module("bridge.pixels").read_pixels(image)
    assert bpy.ops.latent_textures.upscale(image=generated.name, **options) == {"FINISHED"}
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(settings.result_image), pixels)
    assert datablock_counts()["images"] == before["images"] + 2


def test_a_base_model_as_the_x4_upscaler_is_refused_and_changes_nothing(settings, generated, tiny_sd_model):
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="not an x4 upscaler"):
        bpy.ops.latent_textures.upscale(method="X4_UPSCALER", upscaler_model=str(tiny_sd_model), tile_size=128)
    assert datablock_counts() == before
    assert settings.result_image == generated


# -- the panel's LoRAs, Upscale After Generate failing, the seed, Tile Size (issue 24) -------------------------------

def test_the_panels_loras_redraw_the_tiles_and_are_recorded_and_weight_0_or_off_is_no_lora(
        settings, generated, tiny_tile_controlnet, tiny_lora):
    read_pixels = module("bridge.pixels").read_pixels
    options = {"image": generated.name, "factor": 2, "strength": 0.5, "control_model": str(tiny_tile_controlnet),
               "tile_size": 128}

    def upscaled():
        assert bpy.ops.latent_textures.upscale(**options) == {"FINISHED"}
        return read_pixels(settings.result_image), settings.result_image["latent_textures"].to_dict()["upscale"]

    plain, recipe = upscaled()
    assert recipe["loras"] == []
    assert bpy.ops.latent_textures.lora_add(filepath=str(tiny_lora), weight=1.0) == {"FINISHED"}
    with_lora, recipe = upscaled()
    assert np.abs(with_lora - plain).max() > 0.02
    assert [(e["name"], e["weight"]) for e in recipe["loras"]] == [(tiny_lora.name, 1.0)]
    settings.loras[0].weight = -2.0
    opposite, recipe = upscaled()
    assert np.abs(opposite - with_lora).max() > 0.02 and np.abs(opposite - plain).max() > 0.02
    assert recipe["loras"][0]["weight"] == -2.0
    settings.loras[0].weight = 0.0
    zero, recipe = upscaled()
    np.testing.assert_allclose(zero, plain, atol=0.5 / 255 + 1e-6)  # no LoRA term (peft still runs its layers)
    assert recipe["loras"][0]["weight"] == 0.0
    settings.loras[0].weight = 1.0
    settings.loras[0].enabled = False
    off, recipe = upscaled()
    np.testing.assert_array_equal(off, plain)
    assert recipe["loras"] == []


def test_the_x4_upscaler_says_the_loras_do_not_apply(settings, generated, tiny_x4_upscaler, tiny_lora, capfd):
    assert bpy.ops.latent_textures.lora_add(filepath=str(tiny_lora), weight=1.0) == {"FINISHED"}
    assert bpy.ops.latent_textures.upscale(factor=4, method="X4_UPSCALER", upscaler_model=str(tiny_x4_upscaler),
                                           tile_size=128) == {"FINISHED"}
    upscale = settings.result_image["latent_textures"].to_dict()["upscale"]
    assert upscale["loras"] == [] and "LoRAs do not apply to the x4 upscaler" in upscale["not_applied"]
    assert "LoRAs do not apply to the x4 upscaler" in "".join(capfd.readouterr())


@pytest.fixture
def offline():
    system = bpy.context.preferences.system
    online = system.use_online_access
    system.use_online_access = False
    assert not bpy.app.online_access
    yield
    system.use_online_access = online


def test_upscale_after_generate_with_its_tile_controlnet_not_downloaded_offline_is_refused_first(
        settings, tiny_sd_model, offline):
    _upscale_after(settings, tiny_sd_model, upscale_strength=0.5, upscale_control_model="")
    before = datablock_counts()
    refusal = "tile ControlNet lllyasviel/control_v11f1e_sd15_tile is not in the model caches .* offline mode is on"
    with pytest.raises(RuntimeError, match=refusal):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and settings.result_image is None
    # The upscale operator refuses the same way before it runs.
    image = bpy.data.images.new("photo", 16, 16)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match=refusal):
        bpy.ops.latent_textures.upscale(image=image.name, factor=2, strength=0.5)
    assert datablock_counts() == before


def test_upscale_after_generate_failing_in_the_run_keeps_the_generation_and_warns(settings, tiny_sd_model, capfd):
    # A base model as the x4 upscaler: it is on disk (prepare passes), the run finds it is not an upscaler.
    _upscale_after(settings, tiny_sd_model, upscale_method="X4_UPSCALER", upscale_x4_model=str(tiny_sd_model))
    before = datablock_counts()
    capfd.readouterr()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    image = settings.result_image
    assert image is not None and tuple(image.size) == (64, 64)  # the generation, not upscaled
    recipe = image["latent_textures"].to_dict()
    assert "upscale" not in recipe and recipe["seed"] == 9 and settings.seed == 9
    assert datablock_counts()["images"] == before["images"] + 1
    out = "".join(capfd.readouterr())
    assert "Upscale After Generate failed" in out and "not an x4 upscaler" in out
    # The same settings without the upscale reproduce it exactly.
    pixels = module("bridge.pixels").read_pixels(image)
    settings.upscale_after = "NONE"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(settings.result_image), pixels)


def test_an_upscale_leaves_the_panels_seed_so_turning_random_off_reproduces_the_source(
        settings, generated, tiny_tile_controlnet):
    read_pixels = module("bridge.pixels").read_pixels
    source = read_pixels(generated)
    settings.use_random_seed = True  # the upscale draws a seed of its own
    assert bpy.ops.latent_textures.upscale(factor=2, strength=0.5, control_model=str(tiny_tile_controlnet),
                                           tile_size=128) == {"FINISHED"}
    upscale_seed = settings.result_image["latent_textures"].to_dict()["upscale"]["seed"]
    assert settings.seed == 5 and upscale_seed != 5
    settings.use_random_seed = False
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert settings.result_image["latent_textures"].to_dict()["seed"] == 5
    np.testing.assert_array_equal(read_pixels(settings.result_image), source)


def test_the_smallest_tile_size_runs_and_a_smaller_one_is_refused_naming_tile_size(
        settings, tiny_sd_model, tiny_tile_controlnet):
    configure(settings, tiny_sd_model, prompt="gravel")
    image = bpy.data.images.new("photo", 48, 48)
    image.pixels.foreach_set(np.random.default_rng(2).random(48 * 48 * 4, dtype=np.float32))
    smallest = module("engine.upscale").MIN_TILE_SIZE
    options = {"image": image.name, "factor": 2, "strength": 0.5, "control_model": str(tiny_tile_controlnet)}
    before = datablock_counts()
    for size in (8, 64, smallest - 8, smallest + 4):
        with pytest.raises(RuntimeError, match=rf"Tile Size must be 0 \(the model's own size\) or a multiple of 8 "
                                               rf"from {smallest} to 2048 px .* got {size} px"):
            bpy.ops.latent_textures.upscale(tile_size=size, **options)
    assert datablock_counts() == before and settings.result_image is None
    assert bpy.ops.latent_textures.upscale(tile_size=smallest, **options) == {"FINISHED"}
    upscale = settings.result_image["latent_textures"].to_dict()["upscale"]
    assert tuple(settings.result_image.size) == (96, 96) and upscale["tile_size"] == smallest
    assert upscale["tiles"] == 16  # 72-px tiles 8 px apart (64 px of overlap) over 96 px: 4 x 4
