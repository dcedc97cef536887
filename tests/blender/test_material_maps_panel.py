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
    assert ("label", "3 maps: 2 Marigold runs (intrinsics, normals) × 4 steps per result", "TIME") in log
    settings.target = "OBJECT"
    settings.object_views = 5
    settings.pbr_maps = {"NORMAL"}
    log = draw("VIEW3D_PT_latent_textures_material_maps")
    assert ("label", "1 map: 1 Marigold run (normals) × 4 steps × 5 views per result", "TIME") in log


def test_height_on_geometry_says_it_is_for_flat_textures(settings):
    settings.pbr_maps = {"HEIGHT"}
    settings.target = "PROJECT"
    log = draw("VIEW3D_PT_latent_textures_material_maps")
    assert ("label", "Height: flat textures only (Image, Material)", "ERROR") in log
