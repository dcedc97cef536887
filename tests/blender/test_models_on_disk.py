"""Models artists already have: the standard Hugging Face cache and other tools' model folders, in real Blender."""

from pathlib import Path

import bpy
import pytest

from harness import ADDON_MODULE, datablock_counts
from recording_layout import RecordingLayout

def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def tree(folder: Path) -> list:
    """Every path under ``folder`` with its size: what 'nothing was written' is checked against."""
    if not folder.exists():
        return []
    return sorted((str(p.relative_to(folder)), p.lstat().st_size) for p in folder.rglob("*"))


def draw(draw_function, *args):
    log = []
    draw_function(RecordingLayout(log), *args)
    return log


def labels(log):
    return [entry[1] for entry in log if entry[0] == "label"]


@pytest.fixture
def prefs(addon, tmp_path, monkeypatch):
    """Preferences with an empty add-on cache, a temporary standard cache (HF_HUB_CACHE), online access off."""
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    system = bpy.context.preferences.system
    online = system.use_online_access
    prefs.model_cache_dir = str(tmp_path / "addon-cache")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    system.use_online_access = False
    yield prefs
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences  # a test may have re-enabled the add-on
    prefs.model_cache_dir = ""
    prefs.model_folders.clear()
    for name in ("download_to", "allow_pickle"):
        prefs.property_unset(name)
    system.use_online_access = online
    module("dependencies.model_scan").SCAN.clear()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to ask the hub is recorded (and fails)."""
    import huggingface_hub

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    return calls


@pytest.fixture
def tiny(settings):
    settings.prompt = "mossy stone"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 5
    settings.target = "IMAGE"
    return settings


def test_repo_id_from_the_standard_cache_offline_downloads_nothing(
    prefs, tiny, tiny_models, tiny_sd_model, tmp_path, no_network
):
    assert not bpy.app.online_access
    standard, addon = tmp_path / "hf-cache", tmp_path / "addon-cache"
    snapshot = tiny_models.install_in_hf_cache(tiny_sd_model, standard, "tiny-org/artists-sd")
    before = tree(standard)
    tiny.model = "tiny-org/artists-sd"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    recipe = tiny.result_image["latent_textures"].to_dict()
    assert (recipe["model"], recipe["model_origin"]) == ("tiny-org/artists-sd", "CACHE")
    assert (recipe["model_files"], recipe["model_cache"]) == (str(snapshot), str(standard))
    assert no_network == [] and tree(standard) == before and tree(addon) == []
    shown = labels(draw(module("panels.common").draw_model, tiny))
    assert f"From the Hugging Face cache ({standard})" in shown and str(snapshot) in shown


def test_the_addon_cache_wins_when_both_have_the_model(
    prefs, tiny, tiny_models, tiny_sd_model, tiny_sdxl_model, tmp_path, no_network
):
    standard, addon = tmp_path / "hf-cache", tmp_path / "addon-cache"
    tiny_models.install_in_hf_cache(tiny_sd_model, standard, "tiny-org/both")
    tiny_models.install_in_hf_cache(tiny_sdxl_model, addon, "tiny-org/both")
    tiny.model = "tiny-org/both"
    for download_to in ("ADDON", "SHARED"):  # where downloads would go does not change what is read first
        prefs.download_to = download_to
        options = module("bridge.requests").options_from_preferences(bpy.context)
        assert options.cache_dir == str(addon if download_to == "ADDON" else standard)
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
        recipe = tiny.result_image["latent_textures"].to_dict()
        assert (recipe["family"], recipe["model_cache"]) == ("SDXL", str(addon))
    assert no_network == []


def test_model_folders_are_scanned_classified_and_picked(prefs, tiny, tiny_models, tiny_single_file, tmp_path):
    files = tiny_models.build_model_folders(tmp_path / "tools", tiny_single_file)
    comfy = files["sd1"].parents[1]
    scan = module("dependencies.model_scan")
    offered = scan.tool_model_folders([str(comfy)])
    for _label, path in offered:  # the one-click entries the preferences offer
        assert bpy.ops.latent_textures.add_model_folder(directory=path) == {"FINISHED"}
    assert bpy.ops.latent_textures.add_model_folder(directory=offered[0][1]) == {"FINISHED"}  # no duplicate
    assert [Path(p).name for p in prefs.model_folder_paths()] == ["checkpoints", "loras", "controlnet"]
    assert not scan.SCAN.scanned
    assert bpy.ops.latent_textures.scan_models() == {"FINISHED"}
    found = {Path(entry.path).name: entry for entry in scan.SCAN.entries}
    summary = {name: (e.kind, e.family, e.inpainting, e.usable) for name, e in found.items()}
    assert summary == {
        "tiny-sd1.safetensors": ("CHECKPOINT", "SD1", False, True),
        "tiny-sdxl.safetensors": ("CHECKPOINT", "SDXL", False, True),
        "tiny-sd2-inpainting.safetensors": ("CHECKPOINT", "SD2", True, True),
        "detail.safetensors": ("LORA", "SDXL", None, True),
        "depth.safetensors": ("CONTROLNET", "SD1", None, True),
        "old.ckpt": ("UNKNOWN", None, None, False),
        "half.safetensors": ("UNKNOWN", None, None, False),
        "stub.safetensors": ("UNKNOWN", None, None, False),
        "garbage.safetensors": ("UNKNOWN", None, None, False),
    }
    assert "truncated" in found["half.safetensors"].problem and "arbitrary code" in found["old.ckpt"].refused
    shown = labels(draw(lambda layout: module("preferences")._draw_model_folders(prefs, layout)))
    assert any("half.safetensors" in text and "truncated" in text for text in shown)

    # The searchable list: models only for the Model field; LoRAs/ControlNets of the model's family.
    pick = module("operators.pick_model")
    assert {Path(e.path).name for e in pick.choices(tiny, "MODEL")} == {
        "tiny-sd1.safetensors", "tiny-sdxl.safetensors", "tiny-sd2-inpainting.safetensors"}
    assert bpy.ops.latent_textures.pick_model(target="MODEL", choice=str(files["sd1"])) == {"FINISHED"}
    assert tiny.model == str(files["sd1"])
    assert [Path(e.path).name for e in pick.choices(tiny, "LORA")] == []  # the only LoRA is SDXL's
    assert [Path(e.path).name for e in pick.choices(tiny, "CONTROLNET")] == ["depth.safetensors"]
    tiny.model = str(files["sdxl"])
    assert [Path(e.path).name for e in pick.choices(tiny, "LORA")] == ["detail.safetensors"]
    assert pick.choices(tiny, "CONTROLNET") == []
    if not hasattr(tiny, "loras"):
        with pytest.raises(RuntimeError, match="no LoRA list"):
            bpy.ops.latent_textures.pick_model(target="LORA", choice=str(files["lora"]))
    else:
        assert bpy.ops.latent_textures.pick_model(target="LORA", choice=str(files["lora"])) == {"FINISHED"}
        assert [item.source for item in tiny.loras] == [str(files["lora"])]
        tiny.model = str(files["sd1"])
        assert "LoRA detail.safetensors is for SDXL; the model is SD 1.x" in module("panels.common").model_problems(tiny)
        tiny.loras.clear()
        tiny.model = str(files["sdxl"])

    # A wrong pick is flagged in the panel before Generate.
    common = module("panels.common")
    tiny.model = str(files["lora"])
    assert "detail.safetensors is a LoRA, not a model" in labels(draw(common.draw_model, tiny))
    tiny.model = str(files["truncated"])
    assert any("unreadable" in text for text in labels(draw(common.draw_model, tiny)))
    if hasattr(tiny, "control_model"):
        tiny.model, tiny.control_model = str(files["sdxl"]), str(files["controlnet"])
        assert "ControlNet depth.safetensors is for SD 1.x; the model is SDXL" in common.model_problems(tiny)
    tiny.model = str(files["sd1"])
    assert common.model_problems(tiny) == []


def test_the_picked_single_file_generates(prefs, tiny, tiny_models, tiny_single_file, tmp_path, no_network):
    """A checkpoint from another tool's folder runs as picked, with its configs from the shared cache."""
    tiny_models.install_in_hf_cache(tiny_single_file.parent / "config", tmp_path / "hf-cache",
                                    "stable-diffusion-v1-5/stable-diffusion-v1-5")
    files = tiny_models.build_model_folders(tmp_path / "tools", tiny_single_file)
    bpy.ops.latent_textures.add_model_folder(directory=str(files["sd1"].parent))
    bpy.ops.latent_textures.scan_models()
    bpy.ops.latent_textures.pick_model(target="MODEL", choice=str(files["sd1"]))
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    recipe = tiny.result_image["latent_textures"].to_dict()
    assert (recipe["model_origin"], recipe["family"]) == ("SINGLE_FILE", "SD1") and no_network == []


def test_a_truncated_pick_fails_cleanly(prefs, tiny, tiny_models, tiny_single_file, tmp_path):
    files = tiny_models.build_model_folders(tmp_path / "tools", tiny_single_file)
    tiny.model = str(files["truncated"])
    before = datablock_counts()
    with pytest.raises(RuntimeError):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


def test_enabling_the_addon_scans_nothing(addon, prefs, tmp_path, monkeypatch):
    from harness import disable_addon, enable_addon

    disable_addon()
    enable_addon()
    scan = module("dependencies.model_scan")
    assert not scan.SCAN.scanned and scan.SCAN.entries == []
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    (tmp_path / "models").mkdir()
    prefs.model_folders.add().path = str(tmp_path / "models")
    reads = []
    for name in ("scan_all", "scan_folder", "scan_file", "scan_hub_cache"):
        monkeypatch.setattr(scan, name, lambda *args, name=name, **kwargs: reads.append(name))
    monkeypatch.setattr(module("dependencies.safetensors_header"), "read_safetensors_header",
                        lambda *args, **kwargs: reads.append("read_safetensors_header"))
    bpy.context.scene.latent_textures.model = str(tmp_path / "models" / "x.safetensors")
    draw(lambda layout: module("preferences")._draw_model_folders(prefs, layout))
    draw(module("panels.common").draw_model, bpy.context.scene.latent_textures)
    assert reads == [] and not scan.SCAN.scanned


def test_marigold_folders_are_never_offered_as_models(prefs, tiny, tiny_marigold_intrinsics, tiny_marigold_normals,
                                                      tiny_sd_model, tmp_path):
    """The picker lists Marigold pipelines (material maps) as what they are, never in the Model field's list;
    choosing one there anyway is flagged before Generate."""
    import os

    folder = tmp_path / "models"
    folder.mkdir()
    for name, path in (("iid", tiny_marigold_intrinsics), ("normals", tiny_marigold_normals), ("sd", tiny_sd_model)):
        os.symlink(path, folder / name)
    assert bpy.ops.latent_textures.add_model_folder(directory=str(folder)) == {"FINISHED"}
    assert bpy.ops.latent_textures.scan_models() == {"FINISHED"}
    scan = module("dependencies.model_scan")
    kinds = {Path(entry.path).name: entry.kind for entry in scan.SCAN.entries}
    assert kinds == {"iid": "MARIGOLD_INTRINSICS", "normals": "MARIGOLD_NORMALS", "sd": "CHECKPOINT"}
    pick = module("operators.pick_model")
    assert [Path(e.path).name for e in pick.choices(tiny, "MODEL")] == ["sd"]
    tiny.model = str(folder / "normals")
    assert "normals is a Marigold normals (material maps), not a model" in module("panels.common").model_problems(tiny)
