"""Reference images through ``bpy.ops.latent_textures.generate`` / ``upscale`` with the tiny model and the tiny
IP-Adapter (random weights: what is tested is the plumbing and exact pixel equalities, never the look)."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def picture(name, colour, size=(32, 24)):
    width, height = size
    image = bpy.data.images.new(name, width=width, height=height)
    pixels = np.empty((height, width, 4), dtype=np.float32)
    pixels[...] = (*colour, 1.0)
    pixels[: height // 2, :, :3] *= 0.3  # the lower half darker: a picture, not a flat colour
    image.pixels.foreach_set(pixels.ravel())
    image.update()
    return image


def pixels_of(image):
    return module("bridge.pixels").read_pixels(image)


@pytest.fixture
def tiny(settings, tiny_sd_model, tiny_ip_adapter):
    settings.model = str(tiny_sd_model)
    settings.prompt = "brick wall"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 11
    settings.target = "IMAGE"
    settings.reference_model = str(tiny_ip_adapter)
    return settings


def generate(settings):
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    return pixels_of(settings.result_image)


def test_a_reference_changes_the_output_and_strength_0_is_no_reference(tiny, tiny_ip_adapter):
    plain = generate(tiny)
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    tiny.reference_strength = 0.8
    warm = generate(tiny)
    tiny.reference_image = picture("cold", (0.1, 0.3, 0.9))
    cold = generate(tiny)
    assert not np.array_equal(warm, plain) and not np.array_equal(warm, cold)
    tiny.reference_strength = 0.0
    assert np.array_equal(generate(tiny), plain)
    tiny.reference_image = None  # off after on: the plain pixels exactly
    assert np.array_equal(generate(tiny), plain)


def test_the_recipe_records_the_adapter_and_use_this_images_settings_restores_it(tiny, tiny_ip_adapter):
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    tiny.reference_strength = 0.45
    first = generate(tiny)
    made = tiny.result_image
    entry = made["latent_textures"].to_dict()["reference"]
    assert entry["image"] == "warm" and entry["strength"] == pytest.approx(0.45)
    assert entry["sha256"] == module("bridge.reference").image_hash(bpy.data.images["warm"])
    assert entry["model"] and entry["revision"]  # the adapter the engine used, and which version of it
    tiny.reference_image, tiny.reference_strength, tiny.reference_model = None, 0.6, ""
    assert bpy.ops.latent_textures.use_image_settings(image=made.name) == {"FINISHED"}
    assert tiny.reference_image == bpy.data.images["warm"] and tiny.reference_strength == pytest.approx(0.45)
    assert np.array_equal(generate(tiny), first)  # ... and generating again makes the same image


@pytest.mark.parametrize("method", ["GRID", "SYNC"])
def test_whole_object_views_follow_the_reference(tiny, method):
    tiny.target, tiny.object_method, tiny.object_views, tiny.texture_size = "OBJECT", method, 2, 256
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    plain = generate(tiny)
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    tiny.reference_strength = 1.0
    referenced = generate(tiny)
    assert not np.array_equal(plain, referenced)
    assert tiny.result_image["latent_textures"]["reference"]["image"] == "warm"


@pytest.fixture
def sequential(tiny):
    tiny.target, tiny.object_method, tiny.object_views, tiny.texture_size = "OBJECT", "SEQUENTIAL", 3, 256
    tiny.keep_view_images = True
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    return tiny


def view_images(result):
    return [pixels_of(bpy.data.images[f"{result.name} view {index}"]) for index in (1, 2, 3)]


def test_sequential_view_1_as_reference_steers_only_the_later_views(sequential):
    generate(sequential)
    plain = view_images(sequential.result_image)
    sequential.reference_first_view = True
    sequential.reference_strength = 1.0
    generate(sequential)
    result = sequential.result_image
    referenced = view_images(result)
    assert np.array_equal(referenced[0], plain[0])  # view 1 is generated as before: it is the reference
    assert any(not np.array_equal(a, b) for a, b in zip(referenced[1:], plain[1:]))
    entry = result["latent_textures"].to_dict()["reference"]
    assert entry["first_view"] is True and entry["strength"] == pytest.approx(1.0) and entry["revision"]


def test_sequential_view_1_as_reference_without_the_adapter_offline_is_refused_first(sequential):
    sequential.reference_first_view = True
    sequential.reference_model = ""  # the default: h94/IP-Adapter, not in the tests' empty cache
    assert not bpy.app.online_access
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="IP-Adapter|ip-adapter"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and sequential.result_image is None


def test_a_missing_adapter_offline_is_refused_before_anything_runs(tiny, tmp_path):
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    tiny.reference_model = str(tmp_path / "no-such-adapter.safetensors")
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="no-such-adapter"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and tiny.result_image is None


def test_tiled_upscale_tiles_follow_the_reference(tiny, tiny_tile_controlnet):
    source = picture("source", (0.5, 0.5, 0.5), size=(64, 64))
    options = {"image": source.name, "factor": 2, "strength": 0.5, "control_model": str(tiny_tile_controlnet)}
    assert bpy.ops.latent_textures.upscale(**options) == {"FINISHED"}
    plain = pixels_of(tiny.result_image)
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    tiny.reference_strength = 1.0
    assert bpy.ops.latent_textures.upscale(**options) == {"FINISHED"}
    assert not np.array_equal(pixels_of(tiny.result_image), plain)
    upscale = tiny.result_image["latent_textures"].to_dict()["upscale"]
    assert upscale["reference"]["image"] == "warm" and upscale["reference"]["revision"]
    assert upscale["reference"].get("applied", True) is True


def test_the_x4_upscaler_says_the_reference_does_not_apply(tiny, tiny_x4_upscaler, capfd):
    source = picture("source", (0.5, 0.5, 0.5), size=(64, 64))
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    capfd.readouterr()
    assert bpy.ops.latent_textures.upscale(image=source.name, factor=4, method="X4_UPSCALER",
                                           upscaler_model=str(tiny_x4_upscaler)) == {"FINISHED"}
    assert "reference image does not apply to the x4 upscaler" in capfd.readouterr().out
    upscale = tiny.result_image["latent_textures"].to_dict()["upscale"]
    assert upscale["reference"]["image"] == "warm" and upscale["reference"]["applied"] is False


def test_upscale_after_generate_tiles_follow_the_generations_reference(tiny, tiny_tile_controlnet):
    tiny.upscale_after, tiny.upscale_strength = "2", 0.5
    tiny.upscale_control_model = str(tiny_tile_controlnet)
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    generate(tiny)
    recipe = tiny.result_image["latent_textures"].to_dict()
    assert tuple(tiny.result_image.size) == (128, 128)
    assert recipe["reference"]["image"] == "warm" and recipe["reference"]["revision"]
    assert recipe["upscale"]["reference"]["model"] == recipe["reference"]["model"]


def test_a_finished_run_drops_the_reference_picture(tiny):
    """Blender keeps finished operators (and their runs) around: they must not hold the picture's pixels."""
    tiny.reference_image = picture("warm", (0.9, 0.5, 0.2))
    targets = module("bridge.targets")
    run = targets.start(targets.prepare(bpy.context))
    assert run.plan.request.reference is not None
    run.run_here()
    assert run.tick(bpy.context) == "FINISHED"
    assert run.plan.request.reference is None and run.plan.reference.spec is None
    assert tiny.result_image["latent_textures"]["reference"]["image"] == "warm"
