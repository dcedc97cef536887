"""``bpy.ops.latent_textures.use_recommended_settings()``: the family's settings, read from configs, nothing loaded."""

import bpy
import pytest

from harness import ADDON_MODULE


def loaded_engine():
    return __import__(f"{ADDON_MODULE}.engine", fromlist=["_"]).loaded_engine()


def loads():
    engine = loaded_engine()
    return engine.load_count if engine is not None else 0


def test_sdxl_folder_proposes_1024(settings, tiny_sdxl_model, capfd):
    settings.model = str(tiny_sdxl_model)
    settings.width, settings.height, settings.steps = 512, 512, 30
    before = loads()
    capfd.readouterr()
    assert bpy.ops.latent_textures.use_recommended_settings() == {"FINISHED"}
    assert (settings.width, settings.height, settings.steps, settings.scheduler) == (1024, 1024, 25,
                                                                                   "DPM_SOLVER_MULTISTEP")
    assert "Recommended for SDXL: Width 512 -> 1024, Height 512 -> 1024, Steps 30 -> 25" in capfd.readouterr().out
    assert loads() == before  # configs only: no model was loaded
    assert bpy.ops.latent_textures.use_recommended_settings() == {"FINISHED"}
    assert "already suit this SDXL model" in capfd.readouterr().out


def test_lcm_folder_proposes_few_steps_low_guidance_and_the_lcm_scheduler(settings, tiny_lcm_model):
    settings.model = str(tiny_lcm_model)
    settings.steps, settings.guidance_scale, settings.scheduler = 25, 7.5, "EULER"
    assert bpy.ops.latent_textures.use_recommended_settings() == {"FINISHED"}
    assert (settings.width, settings.steps, settings.scheduler) == (512, 4, "LCM")
    assert settings.guidance_scale == pytest.approx(1.0)


def test_unknown_family_changes_nothing(settings):
    settings.model = "someorg/not-downloaded"
    settings.width = 640
    with pytest.raises(RuntimeError, match="not downloaded yet"):
        bpy.ops.latent_textures.use_recommended_settings()
    assert settings.width == 640 and settings.model == "someorg/not-downloaded"
