"""The Material Maps sub-panel (recording layout, real RNA): the maps, the models, the work before the click."""

import pytest

from test_panels import draw


@pytest.mark.parametrize("panel_name", ["VIEW3D_PT_latent_textures_material_maps",
                                        "IMAGE_PT_latent_textures_material_maps"])
def test_the_panel_draws_its_settings(panel_name):
    log = draw(panel_name)
    assert {"pbr_maps", "pbr_model", "normals_model"} <= {entry[1] for entry in log if entry[0] == "prop"}
    assert ("operator", "latent_textures.material_maps") in log


def test_the_extra_work_is_shown_before_the_click(settings):
    assert not [e for e in draw("VIEW3D_PT_latent_textures_material_maps") if e[0] == "label"]
    settings.pbr_maps = {"ALBEDO", "ROUGHNESS", "NORMAL"}
    settings.target = "MATERIAL"
    log = draw("VIEW3D_PT_latent_textures_material_maps")
    assert ("label", "3 maps: intrinsics × 4 steps + normals × 4 steps per result", "TIME") in log
    settings.target = "OBJECT"
    settings.object_views = 5
    settings.pbr_maps = {"NORMAL"}
    log = draw("VIEW3D_PT_latent_textures_material_maps")
    assert ("label", "1 map: normals × 4 steps, × 5 views per result", "TIME") in log


def test_a_model_folder_says_its_own_steps(settings, tiny_marigold_normals):
    settings.pbr_maps = {"NORMAL"}
    settings.normals_model = str(tiny_marigold_normals)  # its model_index says 2
    log = draw("VIEW3D_PT_latent_textures_material_maps")
    assert ("label", "1 map: normals × 2 steps per result", "TIME") in log


def test_height_on_geometry_says_it_is_for_flat_textures(settings):
    settings.pbr_maps = {"HEIGHT"}
    settings.target = "PROJECT"
    log = draw("VIEW3D_PT_latent_textures_material_maps")
    assert ("label", "Height: flat textures only (Image, Material)", "ERROR") in log


def test_a_running_maps_job_shows_maps_and_its_step(settings):
    import sys

    import numpy as np

    from harness import ADDON_MODULE

    job_module = sys.modules[f"{ADDON_MODULE}.bridge.job"]
    material_maps = __import__(f"{ADDON_MODULE}.bridge.material_maps", fromlist=["_"])
    engine = __import__(f"{ADDON_MODULE}.engine", fromlist=["_"])
    request = engine.MaterialMapsRequest(image=np.zeros((8, 8, 3), dtype=np.float32), maps=("NORMAL",))
    plan = material_maps.MapsPlan(request, engine.EngineOptions(), "photo", {}, False)
    job = material_maps.MapsJob(plan)
    job_module.set_current_job(job)
    assert ("progress", 0.0, "Loading model…") in draw("VIEW3D_PT_latent_textures")  # steps not known yet
    job.events.put(job_module.JobEvent("progress", engine.ProgressEvent(1, 4, stage="MAPS", part=1, parts=1,
                                                                        detail="normal")))
    job.drain()
    assert ("progress", 0.25, "maps: normal 1/4") in draw("VIEW3D_PT_latent_textures")
