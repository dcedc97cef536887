"""Whole Object on every material the mesh's faces use (issue 23 item 4), and Compare refusing Whole Object
(item 6), through the real ``bpy.ops`` and ``ObjectRun`` with the tiny models (64 px views, 256 px textures)."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts
from test_object_target import select, whole, wiring  # noqa: F401 (whole: the tiny model's Whole Object settings)


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def plain(whole):
    whole.control = "NONE"
    whole.object_views = 2
    return whole


def two_material_cube():
    """The startup cube with 'Material' on three faces, 'Paint' on the other three and an unused 'Spare' slot."""
    cube = bpy.data.objects["Cube"]
    for name in ("Paint", "Spare"):
        material = bpy.data.materials.new(name)
        material.use_nodes = True  # as Blender 5 makes every new material (4.2 LTS makes them without a node tree)
        cube.data.materials.append(material)
    cube.data.polygons.foreach_set("material_index", np.array([0, 1, 0, 1, 0, 1], dtype=np.int32))
    cube.data.update()
    return cube


def links(material):
    return sorted((link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier)
                  for link in material.node_tree.links)


def run_here(context=None):
    run = module("bridge.object_target").ObjectRun(module("bridge.targets").prepare(context or bpy.context))
    run.run_here()
    assert run.tick(bpy.context) == "FINISHED"
    return run


def test_every_material_the_faces_use_gets_the_texture_through_the_uv_map(plain):
    cube = two_material_cube()
    cube.data.uv_layers.active.name = "Painted"
    select(cube)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    texture = plain.result_image
    for name in ("Material", "Paint"):  # both wired: a UV Map node naming the UV map feeds the texture
        node, uv_map = wiring(bpy.data.materials[name])
        assert node.image == texture and uv_map.uv_map == "Painted"
    spare = bpy.data.materials["Spare"]  # no face uses it: untouched
    assert not any(node.get("latent_textures") for node in spare.node_tree.nodes)
    # The texture reaches the faces of both materials: the faces of each show painted texels.
    pixels = module("bridge.pixels").read_pixels(texture)[..., :3]
    assert pixels.std() > 0.01
    assert [slot.material.name for slot in cube.material_slots] == ["Material", "Paint", "Spare"]


def test_keep_history_stacks_a_node_in_every_material(plain):
    cube = two_material_cube()
    select(cube)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    plain.keep_history = True
    plain.seed = 8
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    for name in ("Material", "Paint"):
        tree = bpy.data.materials[name].node_tree
        ours = [n for n in tree.nodes if n.type == "TEX_IMAGE" and n.get("latent_textures") == "texture"]
        assert len(ours) == 2  # the first one kept, the new one linked
        linked = [n for n in ours if n.outputs["Color"].is_linked]
        assert [n.image for n in linked] == [plain.result_image]


def test_an_empty_slot_the_faces_use_gets_a_new_material(plain):
    cube = two_material_cube()
    cube.material_slots[1].material = None
    select(cube)
    materials_before = set(bpy.data.materials.keys())
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    (new,) = set(bpy.data.materials.keys()) - materials_before
    assert cube.material_slots[1].material == bpy.data.materials[new]
    wiring(bpy.data.materials[new])
    wiring(bpy.data.materials["Material"])


def test_a_material_used_outside_the_selection_is_left_unchanged_and_named(plain):
    cube = two_material_cube()
    bpy.ops.mesh.primitive_uv_sphere_add(segments=8, ring_count=4, location=(3, 0, 0))
    sphere = bpy.context.active_object
    sphere.name = "Outside Sphere"
    sphere.data.materials.append(bpy.data.materials["Paint"])
    paint = bpy.data.materials["Paint"]
    paint_before = (len(paint.node_tree.nodes), links(paint))
    select(cube)
    run = run_here()
    assert (len(paint.node_tree.nodes), links(paint)) == paint_before  # left exactly as it was
    wiring(bpy.data.materials["Material"])  # the cube's own material got the texture
    warnings = [text for level, text in run.reports if level == "WARNING"]
    assert len(warnings) == 1
    assert "material 'Paint' is also used by 'Outside Sphere', not selected: it was left unchanged" in warnings[0]
    # Selected too, the sphere is no longer outside: 'Paint' gets the cube's texture (wired once), and the
    # sphere, another mesh with its own texture, is named as sharing it.
    select(cube, sphere)
    run = run_here()
    warnings = [text for level, text in run.reports if level == "WARNING"]
    assert len(warnings) == 1 and "'Outside Sphere' shares material 'Paint' with an object of another mesh" in warnings[0]
    assert wiring(paint)[0].image == wiring(bpy.data.materials["Material"])[0].image


def test_an_error_while_wiring_leaves_every_material_as_it_was(plain, monkeypatch):
    cube = two_material_cube()
    select(cube)
    before = datablock_counts()
    wired_before = {name: links(bpy.data.materials[name]) for name in ("Material", "Paint")}
    results = module("bridge.results")
    real = results.add_image_to_base_color
    calls = []

    def fails_on_the_second(*args, **kwargs):  # our own function, not Blender: the second material fails
        calls.append(args[1].name)
        if len(calls) == 2:
            raise RuntimeError("node tree locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(results, "add_image_to_base_color", fails_on_the_second)
    run = run_here()
    assert calls == ["Material", "Paint"]
    assert any("could not be put on the objects (RuntimeError: node tree locked)" in text
               for level, text in run.reports if level == "WARNING")
    after = datablock_counts()
    assert after.pop("images") == before.pop("images") + 1  # only the texture itself, kept
    assert after == before
    assert {name: links(bpy.data.materials[name]) for name in wired_before} == wired_before


def test_compare_refuses_whole_object_before_anything_runs(plain):
    select(bpy.data.objects["Cube"])
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Compare makes flat images .*set Target to Image"):
        bpy.ops.latent_textures.compare(guidance="1, 7.5")
    assert datablock_counts() == before and plain.result_image is None
