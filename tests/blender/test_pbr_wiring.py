"""Material maps in the material (bridge/pbr_wiring.py): node types, colour spaces, the Normal Map node's UV
map, the Displacement wiring, and which image each exporter takes (glTF, FBX). Both Blender lines.

The maps here are known arrays (the engine's side is tested in tests/engine/): what is checked is where
each one goes, and that the pixels survive the colour space and packing."""

import json

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE

SIZE = 16


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def lit_cube(uv_map=None):
    """The default cube with a 'lit' result on its material, as the Material / Project targets leave it."""
    results = module("bridge.results")
    cube = bpy.data.objects["Cube"]
    changes = results.Changes()
    lit = changes.new_image("LT_lit_7", np.full((SIZE, SIZE, 3), 0.6, dtype=np.float32))
    lit[results.RECIPE_PROPERTY] = {"prompt": "lit", "seed": 7}
    lit.pack()
    material = results.target_material(changes, cube, lambda: changes.new_material(results.MATERIAL_NAME))
    results.add_image_to_base_color(changes, material, lit, uv_map=uv_map)
    changes.commit()
    return cube, material, lit


def known_maps():
    rng = np.random.default_rng(1)
    normal = rng.normal(size=(SIZE, SIZE, 3)) * 0.2 + [0.0, 0.0, 1.0]
    normal /= np.linalg.norm(normal, axis=2, keepdims=True)
    return {
        "albedo": rng.random((SIZE, SIZE, 3)).astype(np.float32),
        "roughness": rng.random((SIZE, SIZE)).astype(np.float32),
        "metallic": rng.random((SIZE, SIZE)).astype(np.float32),
        "normal": (normal * 0.5 + 0.5).astype(np.float32),
        "height": rng.random((SIZE, SIZE)).astype(np.float32),
    }


def wire(material, lit, maps, uv_map=None, keep_history=False):
    results, wiring = module("bridge.results"), module("bridge.pbr_wiring")
    changes = results.Changes()
    images = {kind: wiring.new_map_image(changes, lit.name, kind, array, {"pbr_map": kind, "pbr_source": lit.name})
              for kind, array in maps.items()}
    (found_material, node, shader), = wiring.base_color_users(lit)
    assert found_material == material
    skipped = wiring.wire_maps(changes, material, node, shader, images, uv_map, keep_history)
    changes.commit()
    assert skipped == []
    return images, shader


def feeding(socket):
    return socket.links[0].from_node if socket.is_linked else None


def test_every_map_goes_where_the_principled_bsdf_takes_it():
    cube, material, lit = lit_cube(uv_map="UVMap")
    maps = known_maps()
    images, shader = wire(material, lit, maps, uv_map="UVMap")
    assert shader.type == "BSDF_PRINCIPLED"
    assert feeding(shader.inputs["Base Color"]).image == images["albedo"]
    assert feeding(shader.inputs["Roughness"]).image == images["roughness"]
    assert feeding(shader.inputs["Metallic"]).image == images["metallic"]
    normal_map = feeding(shader.inputs["Normal"])
    assert normal_map.type == "NORMAL_MAP" and normal_map.space == "TANGENT" and normal_map.uv_map == "UVMap"
    assert feeding(normal_map.inputs["Color"]).image == images["normal"]
    output = next(n for n in material.node_tree.nodes if n.type == "OUTPUT_MATERIAL")
    displacement = feeding(output.inputs["Displacement"])
    assert displacement.type == "DISPLACEMENT"
    assert displacement.inputs["Midlevel"].default_value == 0.5
    assert feeding(displacement.inputs["Height"]).image == images["height"]
    assert material.displacement_method == "BUMP"
    assert not any(n.type == "BUMP" for n in material.node_tree.nodes)
    # The lit image keeps its node, unlinked, and every map reads the same UV Map node
    lit_node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == lit)
    assert not lit_node.outputs["Color"].is_linked
    uv_node = feeding(lit_node.inputs["Vector"])
    assert uv_node.type == "UVMAP"
    for image in images.values():
        node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == image)
        assert feeding(node.inputs["Vector"]) == uv_node


def test_colour_spaces_depth_and_pixels_of_the_map_images():
    _, material, lit = lit_cube()
    maps = known_maps()
    images, _ = wire(material, lit, maps)
    assert {kind: image.name for kind, image in images.items()} == {kind: f"{lit.name} {kind}" for kind in maps}
    assert images["albedo"].colorspace_settings.name == "sRGB" and not images["albedo"].is_float
    for kind in ("roughness", "metallic", "normal", "height"):
        assert images[kind].colorspace_settings.name == "Non-Color", kind
    assert images["normal"].is_float and images["height"].is_float
    assert not images["roughness"].is_float and not images["metallic"].is_float
    for image in images.values():
        assert image.packed_file is not None and image["latent_textures"]["pbr_map"] in maps
    pixels = module("bridge.pixels")
    for kind in ("roughness", "metallic"):
        stored = pixels.read_pixels(images[kind])
        np.testing.assert_array_equal(stored[..., 0], stored[..., 1])  # grey: R = G = B
        np.testing.assert_array_equal(stored[..., 0], stored[..., 2])
        np.testing.assert_allclose(stored[..., 0], maps[kind], atol=0.5 / 255 + 1e-6)  # a byte image
    np.testing.assert_array_equal(pixels.read_pixels(images["normal"])[..., :3], maps["normal"])  # float: exact
    np.testing.assert_array_equal(pixels.read_pixels(images["height"])[..., 0], maps["height"])


def test_rewiring_reuses_the_nodes_and_releases_the_old_maps():
    _, material, lit = lit_cube()
    first, _ = wire(material, lit, known_maps())
    nodes = len(material.node_tree.nodes)
    names = [image.name for image in first.values()]
    second, shader = wire(material, lit, known_maps())
    assert len(material.node_tree.nodes) == nodes
    assert all(bpy.data.images.get(name) is None or bpy.data.images.get(name) in second.values() for name in names)
    kept, _ = wire(material, lit, known_maps(), keep_history=True)
    assert len(material.node_tree.nodes) > nodes
    assert all(image.name in bpy.data.images for image in second.values())  # Keep History keeps them


def test_a_failed_wiring_rolls_back_to_the_material_as_it_was():
    from harness import datablock_counts

    results, wiring = module("bridge.results"), module("bridge.pbr_wiring")
    _, material, lit = lit_cube()
    before = datablock_counts()
    changes = results.Changes()
    images = {kind: wiring.new_map_image(changes, lit.name, kind, array, {}) for kind, array in known_maps().items()}
    (_, node, shader), = wiring.base_color_users(lit)
    wiring.wire_maps(changes, material, node, shader, images, None)
    changes.rollback()
    assert datablock_counts() == before
    lit_node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == lit)
    assert feeding(module("bridge.results").principled_bsdf(material.node_tree).inputs["Base Color"]) == lit_node


def _gltf(tmp_path):
    path = tmp_path / "maps.gltf"
    result = bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLTF_SEPARATE", use_selection=False)
    assert result == {"FINISHED"}
    return json.loads(path.read_text())


def _texture_image(document, info):
    return document["images"][document["textures"][info["index"]]["source"]]


@pytest.mark.parametrize("with_height", [False, True], ids=["without_height", "with_height"])
def test_gltf_takes_the_albedo_the_metallic_roughness_and_the_normal_map(tmp_path, with_height):
    """Which image became which texture (with HEIGHT on, the normal texture must still be the normal map)."""
    _, material, lit = lit_cube(uv_map="UVMap")
    maps = known_maps()
    if not with_height:
        del maps["height"]
    wire(material, lit, maps, uv_map="UVMap")
    document = _gltf(tmp_path)
    exported = next(m for m in document["materials"] if m["name"] == material.name)
    pbr = exported["pbrMetallicRoughness"]
    assert _texture_image(document, pbr["baseColorTexture"])["name"] == f"{lit.name} albedo"
    assert _texture_image(document, exported["normalTexture"])["name"] == f"{lit.name} normal"
    metallic_roughness = _texture_image(document, pbr["metallicRoughnessTexture"])["name"]
    assert f"{lit.name} roughness" in metallic_roughness and f"{lit.name} metallic" in metallic_roughness
    assert "roughnessFactor" not in pbr or pbr["roughnessFactor"] == 1.0


def test_fbx_embeds_the_maps_in_their_slots(tmp_path):
    """FBX (Blender's exporter reads the Principled BSDF through its wrapper): the albedo as the diffuse
    colour, roughness, metallic and the normal map (through the Normal Map node) each a texture, embedded."""
    _, material, lit = lit_cube(uv_map="UVMap")
    wire(material, lit, known_maps(), uv_map="UVMap")
    from bpy_extras import node_shader_utils

    wrapper = node_shader_utils.PrincipledBSDFWrapper(material, is_readonly=True)
    assert wrapper.base_color_texture.image.name == f"{lit.name} albedo"
    assert wrapper.roughness_texture.image.name == f"{lit.name} roughness"
    assert wrapper.metallic_texture.image.name == f"{lit.name} metallic"
    assert wrapper.normalmap_texture.image.name == f"{lit.name} normal"
    path = tmp_path / "maps.fbx"
    assert bpy.ops.export_scene.fbx(filepath=str(path), path_mode="COPY", embed_textures=True) == {"FINISHED"}
    data = path.read_bytes()
    for kind in ("albedo", "roughness", "metallic", "normal"):
        assert f"{lit.name}_{kind}".encode() in data or f"{lit.name} {kind}".encode() in data, kind
    assert data.count(b"Video") >= 4  # one embedded video (image) object per map
