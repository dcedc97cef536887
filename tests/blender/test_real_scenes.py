"""The operators on .blend files made by other people (no UVs, shared meshes, modifiers)."""

import shutil
import sys

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, REPO_ROOT, datablock_counts

SCENES = REPO_ROOT.parent / "shared" / "fixtures" / "real-scenes"
pytestmark = pytest.mark.skipif(not SCENES.is_dir(), reason=f"{SCENES} is not there")


def projection_uv_name():
    return __import__(f"{ADDON_MODULE}.bridge.projection", fromlist=["_"]).PROJECTION_UV_NAME


@pytest.fixture
def open_scene(tmp_path, tiny_sd_model):
    def open_copy(name):
        copy = tmp_path / name
        shutil.copy(SCENES / name, copy)  # never modify the fixtures in place
        bpy.ops.wm.open_mainfile(filepath=str(copy))
        settings = bpy.context.scene.latent_textures
        settings.model = str(tiny_sd_model)
        settings.prompt = "weathered paint"
        settings.width = settings.height = 64
        settings.steps = 2
        settings.use_random_seed = False
        settings.seed = 7
        return settings

    return open_copy


def activate(name, select_only=True):
    obj = bpy.data.objects[name]
    if select_only:
        for other in bpy.context.selected_objects:
            other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    return obj


def base_color_texture(material):
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    return bsdf.inputs["Base Color"].links[0].from_node


def test_material_on_instanced_mesh_without_uvs(open_scene):
    settings = open_scene("02_material_instancing.blend")
    cube = activate("CubeGreen.002")
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    texture = base_color_texture(cube.active_material)
    assert texture.image == settings.result_image
    # No UV map to follow: box projection on object coordinates so the texture shows at all.
    assert texture.projection == "BOX"
    assert texture.inputs["Vector"].links[0].from_socket.name == "Object"


def test_material_created_for_object_without_one(open_scene):
    settings = open_scene("02_material_instancing.blend")
    cube = activate("CubeNoMat")
    materials = len(bpy.data.materials)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert len(bpy.data.materials) == materials + 1
    assert base_color_texture(cube.active_material).image == settings.result_image


def test_projection_on_instance_leaves_other_instances_alone(open_scene):
    open_scene("02_material_instancing.blend")
    settings = bpy.context.scene.latent_textures
    settings.target = "PROJECT"
    cube = activate("CubeGreen.002")
    shared = bpy.data.meshes["CubeMESH"]
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert cube.data != shared and projection_uv_name() in cube.data.uv_layers
    assert projection_uv_name() not in shared.uv_layers
    assert bpy.data.objects["CubeRed"].active_material.name == "MaterialRed"


def test_projection_follows_the_armature_pose(open_scene):
    settings = open_scene("03_skinned_cylinder.blend")
    settings.target = "PROJECT"
    cylinder = activate("Cylinder")
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    layer = cylinder.data.uv_layers[projection_uv_name()]
    uvs = np.empty(len(cylinder.data.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uvs)
    assert np.isfinite(uvs).all()
    assert "UVMap" in cylinder.data.uv_layers  # the artist's own UV map stays


def test_projection_on_several_objects_and_save_reload(open_scene, tmp_path):
    settings = open_scene("04_common_materials.blend")
    settings.target = "PROJECT"
    for name in ("Cube", "Sphere", "Plane"):
        activate(name, select_only=False)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    image_name = settings.result_image.name
    path = tmp_path / "projected.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    for name in ("Cube", "Sphere", "Plane"):
        obj = bpy.data.objects[name]
        assert projection_uv_name() in obj.data.uv_layers
        assert base_color_texture(obj.active_material).image.name == image_name


def test_img2img_from_an_eevee_scene_camera(open_scene):
    settings = open_scene("04_common_materials.blend")
    assert bpy.context.scene.render.engine == "BLENDER_EEVEE" or bpy.context.scene.render.engine.startswith("BLENDER_EEVEE")
    engine = bpy.context.scene.render.engine
    settings.mode = "IMG2IMG"
    settings.source = "CAMERA"
    settings.target = "IMAGE"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert bpy.context.scene.render.engine == engine  # headless swap to Cycles is undone
    assert bpy.context.scene.render.resolution_x == 1920


def test_bad_input_on_a_real_scene_changes_nothing(open_scene):
    settings = open_scene("02_material_instancing.blend")
    activate("Camera")
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="not a mesh"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


# -- Whole Object (issue 11) on the real scenes --------------------------------------------------------------
def whole_object(settings, views=2):
    settings.target = "OBJECT"
    settings.object_views = views
    settings.texture_size = 256
    settings.mode = "TXT2IMG"


def uv_values(mesh):
    values = np.empty(len(mesh.uv_layers.active.data) * 2, dtype=np.float32)
    mesh.uv_layers.active.data.foreach_get("uv", values)
    return values


def test_whole_object_refuses_the_instanced_cubes_without_uvs_by_name(open_scene):
    settings = open_scene("02_material_instancing.blend")
    whole_object(settings)
    activate("CubeRed")
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="'CubeRed' has no UV map: unwrap it"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


def test_whole_object_on_the_skinned_cylinder_follows_its_pose_and_keeps_its_uvs(open_scene):
    settings = open_scene("03_skinned_cylinder.blend")
    whole_object(settings)
    cylinder = activate("Cylinder")
    uvs = uv_values(cylinder.data)
    objects, cameras = len(bpy.data.objects), len(bpy.data.cameras)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert np.array_equal(uv_values(cylinder.data), uvs)
    assert (len(bpy.data.objects), len(bpy.data.cameras)) == (objects, cameras)
    image = settings.result_image
    assert tuple(image.size) == (256, 256) and image["latent_textures"]["mesh"] == cylinder.data.name


def test_whole_object_textures_the_sphere_and_the_crate_each_in_its_own_uv_map(open_scene):
    settings = open_scene("04_common_materials.blend")
    whole_object(settings, views=3)
    for other in bpy.context.selected_objects:
        other.select_set(False)
    sphere, cube = bpy.data.objects["Sphere"], bpy.data.objects["Cube"]
    sphere.select_set(True)
    cube.select_set(True)
    bpy.context.view_layer.objects.active = sphere
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    baked = {image["latent_textures"]["mesh"] for image in bpy.data.images
             if "latent_textures" in image and image["latent_textures"].get("mesh")}
    assert baked == {"Sphere", "Cube"}
