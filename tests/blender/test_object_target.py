"""Target Whole Object through ``bpy.ops.latent_textures.generate()``: views around the selected objects,
one grid generation with a tiny ControlNet, baked into each mesh's own render UV map.

Tiny offline models (tools/tiny_models.py); 64 px views, 256 px textures, 2 steps.
"""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def whole(settings, tiny_sd_model, tiny_controlnet):
    settings.model = str(tiny_sd_model)
    settings.prompt = "weathered crate"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 7
    settings.target = "OBJECT"
    settings.object_views = 3
    settings.texture_size = 256
    settings.control = "DEPTH"
    settings.control_model = str(tiny_controlnet)
    return settings


def uv_values(mesh) -> np.ndarray:
    values = np.empty(len(mesh.loops) * 2, dtype=np.float32)
    mesh.uv_layers.active.data.foreach_get("uv", values)
    return values


def scene_state() -> dict:
    return dict(datablock_counts(), objects=len(bpy.data.objects), cameras=len(bpy.data.cameras),
                collections=len(bpy.data.collections))


def select(*objects):
    bpy.ops.object.select_all(action="DESELECT")
    for obj in objects:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = objects[0]


def add_sphere_with_modifier():
    bpy.ops.mesh.primitive_uv_sphere_add(segments=12, ring_count=6, radius=0.8, location=(2.5, 0, 0))
    sphere = bpy.context.active_object
    sphere.modifiers.new("Subdivision", "SUBSURF").levels = 1
    return sphere


def add_linked_cube():
    cube = bpy.data.objects["Cube"]
    twin = cube.copy()  # shares the mesh
    twin.location = (-2.5, 0, 0)
    bpy.context.scene.collection.objects.link(twin)
    return twin


def wiring(material):
    """(texture node, its UV Map node) of the add-on in ``material``, checking they feed the Base Color."""
    tree = material.node_tree
    textures = [n for n in tree.nodes if n.type == "TEX_IMAGE" and n.get("latent_textures") == "texture"]
    uv_maps = [n for n in tree.nodes if n.type == "UVMAP" and n.get("latent_textures") == "vector"]
    assert len(textures) == 1 and len(uv_maps) == 1
    texture, uv_map = textures[0], uv_maps[0]
    assert texture.inputs["Vector"].links[0].from_node == uv_map
    assert any(link.to_socket.name == "Base Color" for link in texture.outputs["Color"].links)
    return texture, uv_map


def test_grid_with_auto_views_bakes_every_mesh_into_its_own_uv_map(whole):
    whole.keep_view_images = True
    cube = bpy.data.objects["Cube"]
    twin = add_linked_cube()
    sphere = add_sphere_with_modifier()
    select(cube, twin, sphere)
    uvs_before = {obj.data.name: uv_values(obj.data) for obj in (cube, sphere)}
    before = scene_state()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    # The UV maps are never written, and no camera or object is left behind.
    for obj in (cube, sphere):
        assert np.array_equal(uv_values(obj.data), uvs_before[obj.data.name])
        assert len(obj.data.uv_layers) == 1
    after = scene_state()
    assert (after["objects"], after["cameras"], after["meshes"]) == (before["objects"], before["cameras"],
                                                                      before["meshes"])
    # One texture per mesh: the cube and its linked twin share one.
    textures = [image for image in bpy.data.images
                if "latent_textures" in image and image["latent_textures"].get("mesh")]
    assert sorted(image["latent_textures"]["mesh"] for image in textures) == sorted([cube.data.name,
                                                                                     sphere.data.name])
    for image in textures:
        assert tuple(image.size) == (256, 256) and image.packed_file is not None
        pixels = module("bridge.pixels").read_pixels(image)[..., :3]
        assert pixels.std() > 0.01  # something was painted, not a flat fill
    by_mesh = {image["latent_textures"]["mesh"]: image for image in textures}
    for obj in (cube, twin, sphere):
        texture, uv_map = wiring(obj.active_material)
        assert texture.image == by_mesh[obj.data.name]
        assert uv_map.uv_map == obj.data.uv_layers.active.name
    assert cube.active_material == twin.active_material
    recipe = whole.result_image["latent_textures"].to_dict()
    assert recipe["target"] == "OBJECT" and recipe["object_method"] == "GRID" and recipe["texture_size"] == 256
    assert len(recipe["views"]) == 3
    for view in recipe["views"]:
        assert np.array(view["matrix_world"]).shape == (4, 4)
        assert view["projection"] == "PERSP" and (view["width"], view["height"]) == (64, 64)
    # Kept view images: what each view contributed and what it was conditioned on.
    name = whole.result_image.name
    for index in (1, 2, 3):
        view = bpy.data.images[f"{name} view {index}"]
        control = bpy.data.images[f"{name} view {index} control"]
        assert tuple(view.size) == (64, 64) and view.use_fake_user and view.packed_file is not None
        assert view["latent_textures"]["view_index"] == index
        assert view["latent_textures"]["control_image"] == control.name
        assert module("bridge.pixels").read_pixels(control)[..., :3].std() > 0.05  # the geometry is in view


def test_same_seed_same_texture_and_a_rerun_replaces_the_node(whole):
    cube = bpy.data.objects["Cube"]
    select(cube)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    first = whole.result_image
    first_name = first.name
    first_pixels = module("bridge.pixels").read_pixels(first)
    nodes = len(cube.active_material.node_tree.nodes)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    second = whole.result_image
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(second), first_pixels)
    texture, _ = wiring(cube.active_material)  # one texture node, one UV Map node: not stacked
    assert texture.image == second
    assert len(cube.active_material.node_tree.nodes) == nodes
    assert first_name not in bpy.data.images or bpy.data.images[first_name] == second  # the old one released


def test_view_collection_cameras_in_name_order_with_an_orthographic_one(whole):
    whole.control = "NONE"  # no ControlNet: the views come from the prompt alone
    views = bpy.data.collections.new("Views")
    bpy.context.scene.collection.children.link(views)
    for name, location, projection in (("B side", (0, -6, 1), "PERSP"), ("A top", (0, 0, 6), "ORTHO")):
        data = bpy.data.cameras.new(name)
        data.type = projection
        data.ortho_scale = 3.0
        camera = bpy.data.objects.new(name, data)
        camera.location = location
        views.objects.link(camera)
        constraint = camera.constraints.new("TRACK_TO")
        constraint.target = bpy.data.objects["Cube"]
    bpy.context.view_layer.update()
    whole.view_collection = views
    cube = bpy.data.objects["Cube"]
    select(cube)
    before = scene_state()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    recipe = whole.result_image["latent_textures"].to_dict()
    assert [view["projection"] for view in recipe["views"]] == ["ORTHO", "PERSP"]  # "A top" before "B side"
    np.testing.assert_allclose(np.array(recipe["views"][0]["matrix_world"]),
                               np.array(bpy.data.objects["A top"].matrix_world), atol=1e-6)
    assert recipe["control"] == "NONE"
    after = scene_state()
    assert (after["objects"], after["cameras"]) == (before["objects"], before["cameras"])
    wiring(cube.active_material)


def test_a_mesh_without_uv_map_is_refused_by_name_and_nothing_changes(whole):
    bpy.ops.mesh.primitive_plane_add(location=(3, 0, 0))
    plane = bpy.context.active_object
    plane.name = "Bare Plane"
    plane.data.uv_layers.remove(plane.data.uv_layers[0])
    select(bpy.data.objects["Cube"], plane)
    before = scene_state()
    with pytest.raises(RuntimeError, match="'Bare Plane' has no UV map: unwrap it"):
        bpy.ops.latent_textures.generate()
    assert scene_state() == before and whole.result_image is None


def test_sequential_generates_view_by_view_and_reproduces_from_the_seed(whole):
    whole.object_method = "SEQUENTIAL"
    whole.keep_view_images = True
    cube = bpy.data.objects["Cube"]
    select(cube)
    uvs_before = uv_values(cube.data)
    before = scene_state()
    parts = []
    with module("bridge.job").progress_listener(lambda event: parts.append((event.part, event.parts))):
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    # Views 2 and 3 inpaint only what view 1 did not see well: each ran as its own generation unless it
    # had nothing new to paint.
    assert parts[0] == (1, 3) and {part for part, _ in parts} <= {1, 2, 3} and len(set(parts)) >= 2
    assert all(total == 3 for _, total in parts)
    first = whole.result_image
    recipe = first["latent_textures"].to_dict()
    assert recipe["object_method"] == "SEQUENTIAL" and len(recipe["views"]) == 3
    assert np.array_equal(uv_values(cube.data), uvs_before)
    after = scene_state()
    assert (after["objects"], after["cameras"]) == (before["objects"], before["cameras"])
    pixels = module("bridge.pixels").read_pixels(first)
    assert pixels[..., :3].std() > 0.01
    for index in (1, 2, 3):
        assert bpy.data.images[f"{first.name} view {index}"]["latent_textures"]["view_index"] == index
    wiring(cube.active_material)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(whole.result_image), pixels)


def test_later_sequential_views_have_their_own_seeds():
    object_target = module("bridge.object_target")
    seeds = [object_target.view_seed(7, index) for index in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4
    assert seeds == [object_target.view_seed(7, index) for index in range(4)]
    assert all(0 <= seed < 2 ** 31 for seed in seeds)


def test_cancel_leaves_nothing_behind(whole):
    targets = module("bridge.targets")
    object_target = module("bridge.object_target")
    whole.steps = 50
    select(bpy.data.objects["Cube"])
    before = scene_state()
    run = object_target.ObjectRun(targets.prepare(bpy.context))
    assert run.job.part_label == "View"
    run.job.cancel()  # as ESC does, before the first step ends
    run.run_here()
    assert run.tick(bpy.context) == "CANCELLED"
    assert ("WARNING", "Generation cancelled: nothing was changed") in run.reports
    assert scene_state() == before and whole.result_image is None


def test_overlapping_uv_islands_are_reported_as_sharing_texels(whole):
    whole.control = "NONE"
    whole.object_views = 2
    cube = bpy.data.objects["Cube"]
    square = np.tile(np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], dtype=np.float32),
                     (len(cube.data.polygons), 1))
    cube.data.uv_layers.active.data.foreach_set("uv", square.ravel())  # every face on one square
    cube.data.update()  # foreach_set tags nothing: the evaluated mesh must see the new UVs
    select(cube)
    run = module("bridge.object_target").ObjectRun(module("bridge.targets").prepare(bpy.context))
    run.run_here()
    assert run.tick(bpy.context) == "FINISHED"
    info = [message for level, message in run.reports if level == "INFO" and "overlapping" in message]
    assert len(info) == 1 and f"'{cube.data.name}'" in info[0] and "texels are shared" in info[0]
    assert np.array_equal(uv_values(cube.data), square.ravel())


def test_the_texture_is_the_bake_of_the_kept_view_images(whole):
    whole.keep_view_images = True
    cube = bpy.data.objects["Cube"]
    select(cube)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    pixels = module("bridge.pixels")
    texture = pixels.read_pixels(whole.result_image)[..., :3]
    # Baked again, independently, from what the views kept: the same texture (up to 8-bit rounding).
    object_bake = module("bridge.object_bake")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    cameras = [view.camera() for view in object_bake.auto_views([cube], depsgraph, 3, 64, 64)]
    passes = object_bake.view_passes(cameras, depsgraph, "DEPTH")
    views = [pixels.read_pixels(bpy.data.images[f"{whole.result_image.name} view {k}"])[..., :3] for k in (1, 2, 3)]
    (baked,) = object_bake.bake_objects([cube], depsgraph, passes, views, 256)
    np.testing.assert_allclose(texture, baked.texture, atol=3 / 255)
    assert baked.gathered.seen.mean() > 0.3  # the views do see the cube
