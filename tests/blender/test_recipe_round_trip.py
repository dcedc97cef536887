"""The recipe round trip: an image's recipe names its exact weights, and fills the panel again."""

import bpy
import pytest

from harness import ADDON_MODULE


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def generated(settings, tiny_sd_model):
    settings.model = str(tiny_sd_model)
    settings.prompt, settings.negative_prompt = "mossy stone", "blurry"
    settings.width, settings.height, settings.steps = 64, 64, 2
    settings.guidance_scale, settings.scheduler, settings.seamless, settings.target = 5.0, "EULER", "X", "IMAGE"
    settings.use_random_seed = True
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    return settings.result_image


def test_use_this_images_settings_fills_the_panel(settings, generated, tiny_sd_model):
    recipe = generated["latent_textures"].to_dict()
    settings.prompt, settings.negative_prompt, settings.model = "something else", "", "other/model"
    settings.steps, settings.guidance_scale, settings.scheduler, settings.seamless = 30, 9.0, "DDIM", "NONE"
    settings.width = settings.height = 512
    settings.use_random_seed, settings.seed = True, recipe["seed"] + 1
    assert bpy.ops.latent_textures.use_image_settings(image=generated.name) == {"FINISHED"}
    assert (settings.prompt, settings.negative_prompt, settings.model) == ("mossy stone", "blurry", str(tiny_sd_model))
    assert (settings.seed, settings.use_random_seed) == (recipe["seed"], False)
    assert (settings.steps, settings.scheduler, settings.seamless, settings.width, settings.height) == (
        2, "EULER", "X", 64, 64)
    assert settings.guidance_scale == pytest.approx(5.0)
    # ... so generating again makes the same image.
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    again = module("bridge.pixels").read_pixels(settings.result_image)
    assert (again == module("bridge.pixels").read_pixels(generated)).all()


def test_a_newer_recipe_fills_what_it_can(settings, generated, capfd):
    recipe = generated["latent_textures"].to_dict()
    recipe.update(scheduler="SOME_FUTURE_SAMPLER", lora="x.safetensors", steps=99999)
    generated["latent_textures"] = recipe
    settings.prompt = "changed"
    capfd.readouterr()
    assert bpy.ops.latent_textures.use_image_settings(image=generated.name) == {"FINISHED"}
    assert settings.prompt == "mossy stone" and settings.scheduler == "EULER" and settings.steps != 99999
    out = capfd.readouterr().out
    assert "scheduler='SOME_FUTURE_SAMPLER'" in out and "steps=99999" in out and "lora" not in out


def test_an_image_without_a_recipe_changes_nothing(settings):
    plain = bpy.data.images.new("plain", 8, 8)
    settings.prompt = "kept"
    with pytest.raises(RuntimeError, match="no Latent Textures recipe"):
        bpy.ops.latent_textures.use_image_settings(image=plain.name)
    assert settings.prompt == "kept"


def test_recipe_records_the_hub_commit_and_a_cached_file_hash(tiny_models, tiny_sd_model, tmp_path):
    import hashlib
    import os

    engine = module("engine")
    revisions = module("engine.revisions")
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path / "hub", "tiny-org/tiny-sd", commit=commit)
    cpu = engine.Engine(engine.EngineOptions(device="CPU", cache_dir=str(tmp_path / "hub"), offline=True))
    request = engine.GenerationRequest(prompt="p", model="tiny-org/tiny-sd", width=64, height=64, steps=1, seed=1)
    try:
        assert cpu.generate(request).recipe["model_revision"] == commit == snapshot.name
    finally:
        cpu.free()

    checkpoint = tmp_path / "model.safetensors"
    data = os.urandom(3 << 20)
    checkpoint.write_bytes(data)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    cache = tmp_path / "digests"
    assert revisions.file_digest(checkpoint, str(cache)) == expected
    saved = (cache / revisions.DIGEST_CACHE_FILE).read_text()
    assert expected in saved and str(checkpoint.resolve()) in saved
    # A new session reads the digest, not the file: same path, size and time with other bytes keeps it.
    stat = checkpoint.stat()
    checkpoint.write_bytes(bytes(len(data)))
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    revisions._memory.clear()
    assert revisions.file_digest(checkpoint, str(cache)) == expected
    checkpoint.write_bytes(data + b"\0")  # a changed file (size, time): hashed again
    assert revisions.file_digest(checkpoint, str(cache)) == "sha256:" + hashlib.sha256(data + b"\0").hexdigest()
