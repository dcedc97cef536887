"""Panels draw on the real scene and context.

A UILayout cannot be created without a window, so draw() gets a recording
layout that checks each call against real RNA: every ``prop`` names a real
property of the real data, every ``operator`` a registered operator. Typos and
stale names fail here; what is drawn is asserted on.
"""

import sys

import bpy
import pytest

from harness import ADDON_MODULE
from recording_layout import RecordingLayout

PANELS = (
    "VIEW3D_PT_latent_textures",
    "VIEW3D_PT_latent_textures_sampling",
    "VIEW3D_PT_latent_textures_model",
    "IMAGE_PT_latent_textures",
    "IMAGE_PT_latent_textures_sampling",
    "VIEW3D_PT_latent_textures_upscale",
    "IMAGE_PT_latent_textures_upscale",
    "VIEW3D_PT_latent_textures_control",
    "VIEW3D_PT_latent_textures_loras",
    "IMAGE_PT_latent_textures_control",
)


def draw(panel_name):
    panel = getattr(bpy.types, panel_name)
    log = []
    holder = type("PanelInstance", (), {"layout": RecordingLayout(log)})()
    assert panel.poll(bpy.context)
    panel.draw(holder, bpy.context)
    return log


@pytest.mark.parametrize("panel_name", PANELS)
def test_every_panel_draws(panel_name):
    assert draw(panel_name)


def test_main_panel_has_the_essentials():
    drawn = {entry[1] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] == "prop"}
    assert {"prompt", "negative_prompt", "mode", "width", "height", "seamless", "target"} <= drawn
    assert ("operator", "latent_textures.generate") in draw("VIEW3D_PT_latent_textures")


def test_img2img_shows_source_and_strength(settings):
    settings.mode = "IMG2IMG"
    settings.source = "IMAGE"
    log = draw("VIEW3D_PT_latent_textures")
    names = [entry[1] for entry in log if entry[0] in ("prop", "template_ID")]
    assert {"source", "strength", "source_image"} <= set(names)


def test_txt2img_hides_source():
    names = [entry[1] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] == "prop"]
    assert "source" not in names and "strength" not in names


def test_guidance_warning_only_above_15(settings):
    def warnings():
        return [e for e in draw("VIEW3D_PT_latent_textures_sampling") if e[0] == "label" and e[2] == "ERROR"]

    settings.guidance_scale = 15.0
    assert warnings() == []
    settings.guidance_scale = 15.5
    assert len(warnings()) == 1


def test_size_not_multiple_of_eight_warns(settings):
    settings.width = 500
    labels = [e for e in draw("IMAGE_PT_latent_textures") if e[0] == "label" and e[2] == "ERROR"]
    assert labels and "multiples of 8" in labels[0][1]


def test_running_job_shows_progress_and_cancel():
    job_module = sys.modules[f"{ADDON_MODULE}.bridge.job"]
    engine = sys.modules.get(f"{ADDON_MODULE}.engine") or __import__(f"{ADDON_MODULE}.engine", fromlist=["x"])
    job = job_module.GenerationJob(engine.EngineOptions(), engine.GenerationRequest(prompt="p", model="m", steps=4))
    job.stage, job.step = "DENOISE", 1
    job_module.set_current_job(job)
    log = draw("VIEW3D_PT_latent_textures")
    assert ("progress", 0.25, "Step 1/4") in log
    assert ("operator", "latent_textures.cancel") in log
    assert ("operator", "latent_textures.generate") not in log
    job.stage, job.step, job.total = "DOWNLOAD", 1_500_000, 4_000_000_000
    assert ("progress", 0.000375, "Downloading model: 2 / 4,000 MB") in draw("VIEW3D_PT_latent_textures")


def test_model_panel_without_a_loaded_model():
    engine = __import__(f"{ADDON_MODULE}.engine", fromlist=["_"]).loaded_engine()
    if engine is not None:  # an earlier test generated: free it, as the Free Model button does
        engine.free()
    log = draw("VIEW3D_PT_latent_textures_model")
    assert ("prop", "model") in log
    assert any(e[0] == "label" and "No model loaded" in e[1] for e in log)


def test_model_panel_has_a_file_browser_button():
    assert ("operator", "latent_textures.browse_model") in draw("VIEW3D_PT_latent_textures_model")


def test_upscale_panel_offers_x2_x4_of_the_result_and_says_when_it_cannot_fit(settings):
    log = draw("IMAGE_PT_latent_textures_upscale")
    assert ("operator", "latent_textures.upscale") in log and ("set", "factor", 4) in log
    assert {"upscale_strength", "upscale_after"} <= {entry[1] for entry in log if entry[0] == "prop"}
    settings.result_image = bpy.data.images.new("huge", 4200, 8)
    warnings = [entry for entry in draw("IMAGE_PT_latent_textures_upscale") if entry[0] == "label"]
    assert ("label", "x4 too large for this machine", "ERROR") in warnings


def test_inpaint_shows_source_mask_and_blur(settings):
    settings.mode = "INPAINT"
    names = [entry[1] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] in ("prop", "template_ID")]
    assert {"source", "mask_image", "mask_blur", "strength"} <= set(names)
    labels = [entry[1] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] == "label"]
    assert any("transparent" in text for text in labels)


def test_control_section_names_defaults_and_the_sdxl_normal_gap(settings):
    assert [e[1] for e in draw("VIEW3D_PT_latent_textures_control") if e[0] == "prop"] == ["control"]
    settings.control = "NORMAL"
    log = draw("VIEW3D_PT_latent_textures_control")
    assert {"control", "control_model", "control_strength"} <= {e[1] for e in log if e[0] == "prop"}
    labels = [e[1] for e in log if e[0] == "label"]
    assert any("normalbae" in text for text in labels)
    assert any(text.startswith("SDXL: no default normal ControlNet") for text in labels)
    bpy.context.scene.camera = None
    assert any("camera" in e[1] for e in draw("VIEW3D_PT_latent_textures_control") if e[0] == "label")


def test_lora_section_lists_rows_with_add_and_remove(settings):
    log = draw("VIEW3D_PT_latent_textures_loras")
    assert ("template_list", "loras") in log
    assert {("operator", "latent_textures.lora_add"), ("operator", "latent_textures.lora_remove")} <= set(log)


def test_model_panel_hints_what_a_few_step_model_ignores(settings, tiny_lcm_model):
    """With an LCM model in memory the panel says so (drawing loads nothing: the engine is asked what it holds)."""
    engine_module = __import__(f"{ADDON_MODULE}.engine", fromlist=["_"])
    settings.model = str(tiny_lcm_model)
    settings.width = settings.height = 64
    settings.steps = 1
    settings.scheduler = "LCM"
    settings.target = "IMAGE"
    settings.negative_prompt = "blurry"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    engine = engine_module.loaded_engine()
    loads = engine.load_count
    hints = [e[1] for e in draw("VIEW3D_PT_latent_textures_model") if e[0] == "label" and e[2] == "INFO"]
    assert "Few-step model: 1-8 steps, guidance 0-1" in hints
    assert "The negative prompt has no effect on this model" in hints
    assert engine.load_count == loads
    bpy.ops.latent_textures.free_model()
    assert [e for e in draw("VIEW3D_PT_latent_textures_model") if e[0] == "label" and "Few-step" in e[1]] == []


def test_whole_object_shows_its_settings_and_the_work_before_clicking(settings):
    settings.target = "OBJECT"
    settings.object_views = 5
    settings.steps = 20
    settings.width = settings.height = 512
    log = draw("VIEW3D_PT_latent_textures")
    names = {entry[1] for entry in log if entry[0] in ("prop", "template_ID")}
    assert {"object_views", "view_collection", "object_method", "texture_size", "keep_view_images"} <= names
    assert ("label", "5 views × 20 steps: 2 grids (3 + 2 views), cells 296×296", "INFO") in log
    settings.object_method = "SEQUENTIAL"
    assert ("label", "5 views × 20 steps: 5 generations of 512×512", "INFO") in draw("VIEW3D_PT_latent_textures")
    assert not {"sync_fraction", "sync_attention"} & {entry[1] for entry in log if entry[0] == "prop"}
    settings.object_method = "SYNC"
    synced = {entry[1] for entry in draw("VIEW3D_PT_latent_textures") if entry[0] == "prop"}
    assert {"sync_fraction", "sync_attention"} <= synced  # the Sync rows only with Method Sync
    settings.object_method = "SEQUENTIAL"
    settings.mode = "IMG2IMG"
    assert ("label", "Whole Object needs Mode Text to Image", "ERROR") in draw("VIEW3D_PT_latent_textures")


def test_a_running_whole_object_job_names_the_view():
    job_module = sys.modules[f"{ADDON_MODULE}.bridge.job"]
    engine = __import__(f"{ADDON_MODULE}.engine", fromlist=["x"])
    job = job_module.GenerationJob(engine.EngineOptions(), engine.GenerationRequest(prompt="p", model="m", steps=4))
    job.part_label, job.part, job.parts, job.stage, job.step = "View", 2, 6, "DENOISE", 1
    assert job.describe() == "View 2/6 · step 1/4"
    job.stage = "BAKE"
    assert job.describe() == "Baking into the UV maps…"


def whole_object_warnings():
    return [e[1] for e in draw("VIEW3D_PT_latent_textures") if e[0] == "label" and e[2] == "ERROR"]


def test_whole_object_grid_shows_the_cell_size_and_the_grid_count(settings):
    settings.target = "OBJECT"
    settings.steps = 25
    settings.width = settings.height = 512
    for views, text in ((4, "4 views × 25 steps: one 512×512 grid, cells 256×256"),
                        (6, "6 views × 25 steps: 2 grids of 888×296, cells 296×296"),
                        (9, "9 views × 25 steps: 3 grids of 888×296, cells 296×296"),
                        (16, "16 views × 25 steps: 4 grids of 512×512, cells 256×256")):
        settings.object_views = views
        assert ("label", text, "INFO") in draw("VIEW3D_PT_latent_textures")


def test_whole_object_warns_of_cells_too_small_for_the_model_and_of_control_none(settings, tiny_sd_model):
    """The family comes from the model in memory or the last model scan, never from loading it in the panel;
    unknown: no cell warning."""
    scan = sys.modules[f"{ADDON_MODULE}.dependencies.model_scan"]
    engine_module = __import__(f"{ADDON_MODULE}.engine", fromlist=["_"])
    settings.target = "OBJECT"
    settings.object_views = 6
    settings.width = settings.height = 512
    settings.model = "/nowhere/unknown-model"  # neither loaded nor scanned
    assert whole_object_warnings() == ["Grid with Control None: the views ignore the object's shape and will not "
                                       "meet at the seams: set Control to Depth"]
    settings.control = "DEPTH"
    assert whole_object_warnings() == []
    # An SDXL checkpoint the last scan saw: 296 px cells are under the 512 px SDXL draws from.
    path = "/models/sdxl-base.safetensors"
    scan.SCAN.by_path[scan._key(path)] = scan.ModelEntry(path, "CHECKPOINT", "SDXL")
    try:
        settings.model = path
        assert whole_object_warnings() == ["Cells of 296×296 are too small for SDXL (it draws from 512 px): set "
                                           "Size X/Y to 1024×1024 (Use Recommended Settings)"]
        settings.width = settings.height = 1024  # cells of 592 px
        assert whole_object_warnings() == []
    finally:
        scan.SCAN.by_path.pop(scan._key(path))
    # The tiny SD 1.x model in memory (loaded by a generation): 296 px cells are fine, 144 px ones are not.
    settings.model = str(tiny_sd_model)
    settings.width = settings.height = 64
    settings.steps = 1
    settings.target, settings.control = "IMAGE", "NONE"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    loads = engine_module.loaded_engine().load_count
    settings.target, settings.control = "OBJECT", "DEPTH"
    settings.width = settings.height = 512
    assert whole_object_warnings() == []
    settings.width = settings.height = 256
    assert whole_object_warnings() == ["Cells of 144×144 are too small for SD 1.x (it draws from 256 px): set Size "
                                       "X/Y to 512×512 (Use Recommended Settings)"]
    settings.object_method = "SEQUENTIAL"  # each view at full size: no cells
    assert whole_object_warnings() == []
    assert engine_module.loaded_engine().load_count == loads  # drawing loaded nothing
