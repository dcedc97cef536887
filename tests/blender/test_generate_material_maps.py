"""Generate with Material Maps set (``pbr_maps``): the maps made after each result and wired beside it, through
``bpy.ops.latent_textures.generate()`` with the tiny SD and tiny Marigold models (noise: plumbing only)."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts
from test_generate import active_cube, tiny  # noqa: F401 - the fixture is used by name


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def with_maps(tiny, tiny_marigold_intrinsics, tiny_marigold_normals):
    tiny.pbr_model = str(tiny_marigold_intrinsics)
    tiny.normals_model = str(tiny_marigold_normals)
    return tiny


def feeding(socket):
    return socket.links[0].from_node if socket.is_linked else None


def test_material_target_gets_the_maps_and_keeps_the_lit_result(with_maps):
    active_cube()
    with_maps.target = "MATERIAL"
    with_maps.pbr_maps = {"ALBEDO", "ROUGHNESS", "METALLIC", "NORMAL", "HEIGHT"}
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    lit = with_maps.result_image
    assert lit is not None and " " not in lit.name  # result_image stays the lit image
    material = bpy.data.objects["Cube"].active_material
    shader = module("bridge.results").principled_bsdf(material.node_tree)
    albedo = feeding(shader.inputs["Base Color"]).image
    assert albedo.name == f"{lit.name} albedo"
    recipe = albedo["latent_textures"].to_dict()
    assert recipe["pbr_map"] == "albedo" and recipe["seed"] == lit["latent_textures"]["seed"]
    assert recipe["prompt"] == lit["latent_textures"]["prompt"] and recipe["pbr_model"] == with_maps.pbr_model
    normal_map = feeding(shader.inputs["Normal"])
    assert normal_map.type == "NORMAL_MAP" and normal_map.uv_map == ""  # a flat texture: the render UV map
    output = next(n for n in material.node_tree.nodes if n.type == "OUTPUT_MATERIAL")
    assert feeding(feeding(output.inputs["Displacement"]).inputs["Height"]).image.name == f"{lit.name} height"
    lit_node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == lit)
    assert not lit_node.outputs["Color"].is_linked


def test_project_puts_the_normal_map_in_the_projection_uv_maps_tangent_space(with_maps):
    cube = active_cube()
    with_maps.target = "PROJECT"
    with_maps.pbr_maps = {"NORMAL", "ROUGHNESS"}
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    lit = with_maps.result_image
    assert "projection_camera" in lit["latent_textures"]
    material = cube.active_material
    shader = module("bridge.results").principled_bsdf(material.node_tree)
    normal_map = feeding(shader.inputs["Normal"])
    lit_node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == lit)
    projection_uv = feeding(lit_node.inputs["Vector"]).uv_map
    assert normal_map.uv_map == projection_uv and cube.data.uv_layers.get(projection_uv) is not None
    normal = module("bridge.pixels").read_pixels(feeding(normal_map.inputs["Color"]).image)[..., :3]
    # Pixels showing no surface of the cube are "as the geometry is"; the others went through its tangents
    assert np.all(normal[0, 0] == [0.5, 0.5, 1.0])
    decoded = normal * 2.0 - 1.0
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=2), 1.0, atol=1e-4)


def test_height_on_project_is_refused_before_anything_runs(with_maps):
    active_cube()
    with_maps.target = "PROJECT"
    with_maps.pbr_maps = {"HEIGHT"}
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Height maps are made for flat textures only"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and with_maps.result_image is None


def test_a_non_marigold_maps_model_is_refused_before_anything_runs(with_maps, tiny_sd_model):
    with_maps.target = "IMAGE"
    with_maps.pbr_maps = {"ALBEDO"}
    with_maps.pbr_model = str(tiny_sd_model)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Marigold|pipeline"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and with_maps.result_image is None


def test_maps_that_fail_in_the_run_keep_the_generation_and_say_why(with_maps, tiny_marigold_intrinsics, tmp_path,
                                                                   capfd):
    """A Marigold folder whose UNet weights are missing passes the check on disk and fails when it loads."""
    import shutil

    broken = tmp_path / "broken-iid"
    shutil.copytree(tiny_marigold_intrinsics, broken)
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.unlink()
    with_maps.target = "IMAGE"
    with_maps.pbr_maps = {"ALBEDO"}
    with_maps.pbr_model = str(broken)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    lit = with_maps.result_image
    assert lit is not None and bpy.data.images.get(f"{lit.name} albedo") is None
    assert "material maps failed" in capfd.readouterr().out


def test_project_a_perfect_normals_model_gives_flat_blue_on_a_tilted_plane(tiny):
    """The PROJECT chain with the geometry's own camera-frame normals as the model's answer (what a perfect
    normals model paints): through the projection camera the recipe recorded and Blender's tangents of the
    projection UV map, every pixel showing the tilted, scaled plane is (0.5, 0.5, 1.0)."""
    engine, writer = module("engine"), module("bridge.pbr_maps_writer")
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    bpy.ops.mesh.primitive_plane_add(size=3.0, rotation=(0.6, 0.3, 0.2))
    plane = bpy.context.active_object
    plane.scale = (1.5, 1.0, 1.0)
    tiny.target = "PROJECT"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    lit = tiny.result_image
    recipe = lit["latent_textures"].to_dict()
    camera = writer.recorded_camera(recipe, *lit.size)
    node = next(n for n in plane.active_material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == lit)
    uv_map = feeding(node.inputs["Vector"]).uv_map
    depsgraph = bpy.context.evaluated_depsgraph_get()
    passes = module("bridge.geometry").geometry_passes(bpy.context.scene, depsgraph, *lit.size)
    np.testing.assert_allclose(passes.camera.world_matrix, camera.world_matrix, atol=1e-6)  # the camera as it was
    result = engine.MaterialMapsResult(maps={"normal": passes.normals}, recipes={"normal": {"pbr_map": "normal"}})
    reports = writer.write_after_generate(bpy.context, lit, result, False, projection=([plane], uv_map, camera))
    assert reports[-1][0] == "INFO", reports
    normal = module("bridge.pixels").read_pixels(bpy.data.images[f"{lit.name} normal"])[..., :3]
    covered = passes.hits.covered
    assert covered.sum() > 500
    np.testing.assert_allclose(normal[covered], np.tile([0.5, 0.5, 1.0], (covered.sum(), 1)), atol=1e-4)
