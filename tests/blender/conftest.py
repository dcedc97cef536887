"""Fixtures of the real-Blender harness (see harness.py for how the add-on is loaded)."""

import sys

import bpy
import pytest

from harness import ADDON_MODULE, ensure_repo, make_extension_repo, disable_addon, enable_addon

@pytest.fixture(scope="session")
def addon():
    """The enabled add-on's package module (``bl_ext.lt_tests.latent_textures``)."""
    repo_dir = make_extension_repo()
    ensure_repo(repo_dir)
    enable_addon()
    yield sys.modules[ADDON_MODULE]
    if ADDON_MODULE in bpy.context.preferences.addons:
        disable_addon()


@pytest.fixture(autouse=True)
def fresh_scene(addon):
    """A factory-startup scene (cube, camera, light) with the add-on still enabled, for every test."""
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    if ADDON_MODULE not in bpy.context.preferences.addons:
        enable_addon()
    yield
    job_module = sys.modules.get(f"{ADDON_MODULE}.bridge.job")
    if job_module is not None:
        job_module.set_current_job(None)


@pytest.fixture
def settings():
    return bpy.context.scene.latent_textures


# Tiny ControlNet / LoRA / inpainting models for the Generate tests (the builders live in tools/tiny_models.py).
@pytest.fixture(scope="session")
def tiny_controlnet(tmp_path_factory, tiny_models, tiny_sd_model):
    return tiny_models.build_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "tiny-cn", tiny_sd_model)


@pytest.fixture(scope="session")
def tiny_controlnet_sdxl(tmp_path_factory, tiny_models, tiny_sdxl_model):
    return tiny_models.build_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "tiny-cn-xl", tiny_sdxl_model)


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory, tiny_models, tiny_sd_model):
    return tiny_models.build_tiny_lora(tmp_path_factory.mktemp("loras") / "tiny-lora", tiny_sd_model)


@pytest.fixture(scope="session")
def tiny_lora_sdxl(tmp_path_factory, tiny_models, tiny_sdxl_model):
    return tiny_models.build_tiny_lora(tmp_path_factory.mktemp("loras") / "tiny-lora-xl", tiny_sdxl_model, seed=1)


@pytest.fixture(scope="session")
def tiny_inpaint_model(tmp_path_factory, tiny_models):
    return tiny_models.build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd-inpaint", kind="inpaint")
