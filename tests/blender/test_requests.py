"""Scene settings and preferences reach the engine as they are set."""

import os

import bpy

from harness import ADDON_MODULE


def requests():
    return __import__(f"{ADDON_MODULE}.bridge.requests", fromlist=["_"])


def test_preferences_become_engine_options():
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.device, prefs.precision = "CPU", "BF16"
    prefs.attention_slicing = prefs.cpu_offload = prefs.allow_pickle = prefs.torch_compile = True
    try:
        options = requests().options_from_preferences(bpy.context)
        assert (options.device, options.precision) == ("CPU", "BF16")
        assert options.attention_slicing and options.cpu_offload and options.allow_pickle and options.torch_compile
        assert options.cache_dir == prefs.resolved_model_cache_dir()
        user_folder = bpy.utils.extension_path_user(ADDON_MODULE, create=False)
        assert options.compile_cache_dir == os.path.join(user_folder, "compile-cache")
        assert options.offline is (not bpy.app.online_access)
    finally:
        for name in ("device", "precision", "attention_slicing", "cpu_offload", "allow_pickle", "torch_compile"):
            prefs.property_unset(name)


def test_settings_become_the_request(settings):
    settings.prompt, settings.negative_prompt = "moss", "blur"
    settings.width, settings.height, settings.steps = 128, 64, 3
    settings.scheduler, settings.seamless = "UNIPC", "X"
    settings.use_random_seed, settings.seed = False, 42
    request = requests().request_from_settings(settings)
    assert (request.prompt, request.negative_prompt, request.width, request.height, request.steps) == \
        ("moss", "blur", 128, 64, 3)
    assert (request.scheduler, request.seamless, request.seed) == ("UNIPC", "X", 42)
    settings.use_random_seed = True
    assert requests().request_from_settings(settings).seed is None


def test_blend_relative_model_path_is_made_absolute(settings, tmp_path):
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    settings.model = "//models/mine"
    assert requests().request_from_settings(settings).model == str(tmp_path / "models" / "mine")
