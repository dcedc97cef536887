"""What a run does to an artist's materials, UV maps and images (issue 12, items 7-10), through ``bpy.ops``."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts
from test_generate import active_cube, plane_filling_camera, tiny  # noqa: F401 - the fixture is used by name


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def texture_nodes(material):
    return [n for n in material.node_tree.nodes if n.type == "TEX_IMAGE"]


def feeding(socket):
    return socket.links[0].from_node if socket.is_linked else None


def surface_shader(material):
    output = next(n for n in material.node_tree.nodes if n.type == "OUTPUT_MATERIAL")
    return feeding(output.inputs["Surface"])


def generated_images():
    return [image for image in bpy.data.images if "latent_textures" in image]


# -- item 7: an empty active slot --------------------------------------------------------------------

def test_empty_active_slot_changes_only_that_slot(tiny):
    cube = active_cube()
    first, last = bpy.data.materials.new("First"), bpy.data.materials.new("Last")
    cube.data.materials.clear()
    for material in (first, None, last):
        cube.data.materials.append(material)
    cube.active_material_index = 1
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    slots = cube.material_slots
    assert slots[0].material == first and slots[2].material == last
    assert [slot.link for slot in slots] == ["DATA", "DATA", "DATA"]
    made = slots[1].material
    assert made not in (None, first, last)
    assert texture_nodes(made)[0].image == tiny.result_image


def test_empty_active_slot_of_a_shared_mesh_leaves_the_other_object_alone(tiny):
    cube = active_cube()
    cube.data.materials.clear()
    keep = bpy.data.materials.new("Keep")
    cube.data.materials.append(keep)
    cube.data.materials.append(None)
    twin = cube.copy()
    bpy.context.collection.objects.link(twin)
    cube.active_material_index = 1
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert cube.material_slots[1].link == "OBJECT" and cube.material_slots[1].material is not None
    assert [slot.material for slot in twin.material_slots] == [keep, None]
    assert cube.material_slots[0].material == keep


# -- item 8: materials without a Principled BSDF -------------------------------------------------------

def _material_with(shader_type):
    cube = active_cube()
    material = bpy.data.materials.new("Artist")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    tree = material.node_tree
    for node in [n for n in tree.nodes if n.type != "OUTPUT_MATERIAL"]:
        tree.nodes.remove(node)
    output = next(n for n in tree.nodes if n.type == "OUTPUT_MATERIAL")
    shader = tree.nodes.new(shader_type)
    tree.links.new(shader.outputs[0], output.inputs["Surface"])
    cube.data.materials.clear()
    cube.data.materials.append(material)
    return material, shader


def test_diffuse_material_gets_the_texture_in_its_own_colour_input(tiny):
    material, diffuse = _material_with("ShaderNodeBsdfDiffuse")
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert surface_shader(material) == diffuse  # the artist's shader still renders
    assert feeding(diffuse.inputs["Color"]).image == tiny.result_image
    assert not any(n.type == "BSDF_PRINCIPLED" for n in material.node_tree.nodes)


def test_mix_shader_material_is_mixed_with_not_replaced(tiny):
    material, mix = _material_with("ShaderNodeMixShader")
    tree = material.node_tree
    glossy, glass = tree.nodes.new("ShaderNodeBsdfGlossy"), tree.nodes.new("ShaderNodeBsdfGlass")
    tree.links.new(glossy.outputs[0], mix.inputs[1])
    tree.links.new(glass.outputs[0], mix.inputs[2])
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    added = surface_shader(material)
    assert added.type == "MIX_SHADER" and added != mix
    assert feeding(added.inputs[1]) == mix  # the artist's shader is one input of the new mix
    assert added.inputs["Fac"].default_value == 1.0
    principled = feeding(added.inputs[2])
    assert principled.type == "BSDF_PRINCIPLED" and feeding(principled.inputs["Base Color"]).image == tiny.result_image
    assert feeding(mix.inputs[1]) == glossy and feeding(mix.inputs[2]) == glass
    # A second run finds the same mix and Principled again: nothing more is stacked.
    count = len(tree.nodes)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert len(tree.nodes) == count and surface_shader(material) == added


# -- item 9: five runs ---------------------------------------------------------------------------------

def test_five_runs_reuse_one_node_and_let_old_images_go(tiny):
    cube = active_cube()
    tiny.use_random_seed = True
    material = cube.active_material
    bpy.ops.latent_textures.generate()
    after_one = datablock_counts()
    node = texture_nodes(material)[0]
    node.label = "renamed by the artist"  # recognised by its marker, not its label
    for _ in range(4):
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert datablock_counts() == after_one
    assert texture_nodes(material) == [node] and node.image == tiny.result_image
    assert generated_images() == [tiny.result_image]


def test_an_artist_node_labelled_like_ours_is_not_reused(tiny):
    cube = active_cube()
    tree = cube.active_material.node_tree
    artist = tree.nodes.new("ShaderNodeTexImage")
    artist.label = module("bridge.results").IMAGE_NODE_LABEL
    artist.image = bpy.data.images.new("artist painting", 8, 8)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert artist.image.name == "artist painting"
    assert len(texture_nodes(cube.active_material)) == 2


def test_an_image_used_elsewhere_is_kept(tiny):
    cube = active_cube()
    bpy.ops.latent_textures.generate()
    first = tiny.result_image
    first.use_fake_user = True
    tiny.seed += 1
    bpy.ops.latent_textures.generate()
    assert first.name in bpy.data.images


def test_keep_history_keeps_every_result_laid_out_readably(tiny):
    cube = active_cube()
    tiny.keep_history = True
    tiny.use_random_seed = True
    material = cube.active_material
    for _ in range(5):
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    nodes = texture_nodes(material)
    assert len(nodes) == 5 and len(generated_images()) == 5
    assert {node.image for node in nodes} == set(generated_images())
    positions = sorted((node.location.x, node.location.y) for node in nodes)
    ys = [y for _, y in positions]
    assert len({x for x, _ in positions}) == 1 and min(np.diff(sorted(ys))) >= 300  # a column, no overlap
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert feeding(bsdf.inputs["Base Color"]).image == tiny.result_image  # the newest is the one shown


# -- item 10: projection keeps the material; UV maps --------------------------------------------------

def test_project_keeps_the_objects_material(tiny):
    plane = plane_filling_camera("ORTHO")
    material = bpy.data.materials.new("Artist")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    plane.data.materials.append(material)
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.123
    tiny.target = "PROJECT"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert plane.active_material == material and len(plane.material_slots) == 1
    texture = feeding(bsdf.inputs["Base Color"])
    assert texture.image == tiny.result_image
    assert feeding(texture.inputs["Vector"]).uv_map == module("bridge.projection").PROJECTION_UV_NAME
    assert bsdf.inputs["Roughness"].default_value == pytest.approx(0.123)


def test_project_again_reuses_its_uv_map(tiny):
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    tiny.use_random_seed = True
    bpy.ops.latent_textures.generate()
    maps = len(plane.data.uv_layers)
    bpy.ops.latent_textures.generate()
    assert len(plane.data.uv_layers) == maps
    assert len(texture_nodes(plane.active_material)) == 1 and len(generated_images()) == 1


def test_projections_with_history_coexist_each_with_its_uv_map(tiny):
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    tiny.keep_history = True
    name = module("bridge.projection").PROJECTION_UV_NAME
    bpy.ops.latent_textures.generate()
    first_image = tiny.result_image
    bpy.context.scene.camera.location.x = 0.5  # a second view
    tiny.seed += 1
    bpy.ops.latent_textures.generate()
    assert {name, f"{name} 2"} <= set(plane.data.uv_layers.keys())
    by_map = {feeding(node.inputs["Vector"]).uv_map: node.image for node in texture_nodes(plane.active_material)}
    assert by_map == {name: first_image, f"{name} 2": tiny.result_image}
    first = np.array([d.uv[:] for d in plane.data.uv_layers[name].data])
    second = np.array([d.uv[:] for d in plane.data.uv_layers[f"{name} 2"].data])
    np.testing.assert_allclose(second[:, 0], first[:, 0] - 0.25, atol=1e-5)


def test_projection_says_when_the_eight_uv_maps_are_used(tiny):
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    tiny.keep_history = True
    while len(plane.data.uv_layers) < 8:
        plane.data.uv_layers.new(name=f"artist {len(plane.data.uv_layers)}")
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="already has 8 UV maps"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


def test_material_after_projection_reuses_the_node_and_drops_its_uv_node(tiny):
    """Switching targets keeps one node: its UV Map helper goes, a Mapping node the artist added would stay."""
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    tiny.use_random_seed = True
    bpy.ops.latent_textures.generate()
    material = plane.active_material
    tiny.target = "MATERIAL"
    bpy.context.view_layer.objects.active = plane
    bpy.ops.latent_textures.generate()
    texture, = texture_nodes(material)
    assert texture.image == tiny.result_image and not texture.inputs["Vector"].is_linked
    assert not any(n.type == "UVMAP" for n in material.node_tree.nodes)
    mapping = material.node_tree.nodes.new("ShaderNodeMapping")
    material.node_tree.links.new(mapping.outputs[0], texture.inputs["Vector"])
    bpy.ops.latent_textures.generate()
    assert feeding(texture.inputs["Vector"]) == mapping
