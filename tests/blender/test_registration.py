"""The add-on registers, unregisters and re-registers cleanly, and enabling stays cheap."""

import subprocess
import sys
import textwrap

import bpy
import pytest

from harness import ADDON_MODULE, REPO_ROOT, disable_addon, enable_addon

OPERATORS = ("generate", "cancel", "free_model")
PANELS = (
    "VIEW3D_PT_latent_textures",
    "VIEW3D_PT_latent_textures_sampling",
    "VIEW3D_PT_latent_textures_model",
    "IMAGE_PT_latent_textures",
    "IMAGE_PT_latent_textures_sampling",
)


def test_loaded_as_an_extension(addon):
    assert addon.__name__ == ADDON_MODULE
    assert ADDON_MODULE in bpy.context.preferences.addons


def test_operators_registered(addon):
    for name in OPERATORS:
        assert hasattr(bpy.types, f"LATENT_TEXTURES_OT_{name}"), name
        assert getattr(bpy.ops.latent_textures, name).idname() == f"LATENT_TEXTURES_OT_{name}"


def test_panels_registered(addon):
    for name in PANELS:
        panel = getattr(bpy.types, name)
        assert panel.bl_category == "Latent Textures"
        assert panel.bl_region_type == "UI"


def test_scene_settings_registered(addon):
    assert isinstance(bpy.context.scene.latent_textures, bpy.types.PropertyGroup)


def test_preferences_registered(addon):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    assert prefs.bl_rna.identifier == "LatentTexturesPreferences"
    assert prefs.device == "AUTO"
    assert prefs.precision == "AUTO"
    # The default cache folder lives in the extension's own user folder.
    user_dir = bpy.utils.extension_path_user(ADDON_MODULE, create=False)
    assert prefs.resolved_model_cache_dir().startswith(user_dir)


def test_enable_disable_repeatable(addon):
    for _ in range(3):
        disable_addon()
        assert not hasattr(bpy.types.Scene, "latent_textures")
        for name in OPERATORS:
            assert not hasattr(bpy.types, f"LATENT_TEXTURES_OT_{name}"), name
        for name in PANELS:
            assert not hasattr(bpy.types, name), name
        enable_addon()
        assert hasattr(bpy.types.Scene, "latent_textures")
        assert bpy.context.scene.latent_textures.steps == 25


ENABLE_SCRIPT = textwrap.dedent(
    """
    import os, sys, tempfile, time
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
    import bpy, addon_utils
    repo = tempfile.mkdtemp()
    os.symlink({root!r}, os.path.join(repo, "latent_textures"))
    bpy.context.preferences.extensions.repos.new(
        name="lt_probe", module="lt_probe", custom_directory=repo, source="USER")
    before = set(sys.modules)
    start = time.perf_counter()
    addon_utils.enable("bl_ext.lt_probe.latent_textures", default_set=True)
    elapsed = time.perf_counter() - start
    assert "bl_ext.lt_probe.latent_textures" in bpy.context.preferences.addons
    heavy = sorted(m for m in set(sys.modules) - before
                   if m.split(".")[0] in ("torch", "diffusers", "transformers", "accelerate", "safetensors"))
    print("HEAVY", heavy)
    print("ENABLE_SECONDS", elapsed)
    """
)


def test_enabling_imports_no_torch_or_diffusers():
    """In a fresh process, since this one may already hold torch from other tests."""
    completed = subprocess.run(
        [sys.executable, "-c", ENABLE_SCRIPT.format(root=str(REPO_ROOT))],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    heavy_line = next(line for line in completed.stdout.splitlines() if line.startswith("HEAVY"))
    assert heavy_line == "HEAVY []", heavy_line
