"""Baking views into an object's own UV map (bridge/object_bake.py + geometry/), no diffusion.

Known views: Cycles renders (emission, Standard view transform) of a surface whose colour is a
linear function of position, from the automatic views; baked back, compared with Blender's own
bake of the same emission into the UV map."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def object_bake():
    return module("bridge.object_bake")


def _srgb(linear):
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _emission_material(name, colour=None):
    """Emission of a constant colour, or of (0.2, (y + 1.2) / 2.4 ... ) - linear in the object-space position."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    emission = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(emission.outputs[0], output.inputs["Surface"])
    if colour is not None:
        emission.inputs["Color"].default_value = (*colour, 1.0)
        return material
    position = tree.nodes.new("ShaderNodeNewGeometry")
    scale = tree.nodes.new("ShaderNodeVectorMath")
    scale.operation = "MULTIPLY_ADD"
    scale.inputs[1].default_value = (0.0, 0.3, 0.3)
    scale.inputs[2].default_value = (0.2, 0.4, 0.45)
    tree.links.new(position.outputs["Position"], scale.inputs[0])
    tree.links.new(scale.outputs[0], emission.inputs["Color"])
    return material


def _setup_render(scene, size):
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 0.01
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.world = scene.world or bpy.data.worlds.new("World")
    scene.world.use_nodes = True
    scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0


def _render_view(scene, view, tmp_path, index):
    """A Cycles render (display sRGB, top row first) through a temporary camera set from the view."""
    data = bpy.data.cameras.new("view")
    camera = bpy.data.objects.new("view", data)
    scene.collection.objects.link(camera)
    try:
        data.type = "ORTHO" if view.ortho else "PERSP"
        data.lens, data.sensor_width, data.sensor_fit = view.lens, view.sensor_width, "AUTO"
        data.ortho_scale = view.ortho_scale or data.ortho_scale
        data.clip_start, data.clip_end = view.clip_start, view.clip_end
        camera.matrix_world = view.world_matrix.T.tolist()
        scene.camera = camera
        bpy.ops.render.render()
        path = str(tmp_path / f"view{index}.png")
        bpy.data.images["Render Result"].save_render(path)
        image = bpy.data.images.load(path)
        pixels = np.empty(view.width * view.height * 4, np.float32)
        image.pixels.foreach_get(pixels)
        bpy.data.images.remove(image)
        return np.flipud(pixels.reshape(view.height, view.width, 4))[..., :3].copy()
    finally:
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(data)


def _blender_bake(obj, size):
    """Blender's own bake of the emission into the render UV map: (size, size, 3) display sRGB, top row first."""
    image = bpy.data.images.new("truth", size, size, float_buffer=True)
    material = obj.active_material
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    material.node_tree.nodes.active = node
    bpy.context.view_layer.objects.active = obj
    for other in bpy.context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.ops.object.bake(type="EMIT", margin=0)
    pixels = np.empty(size * size * 4, np.float32)
    image.pixels.foreach_get(pixels)
    material.node_tree.nodes.remove(node)
    bpy.data.images.remove(image)
    return _srgb(np.flipud(pixels.reshape(size, size, 4))[..., :3])


def _datablock_counts():
    return {name: len(getattr(bpy.data, name)) for name in ("objects", "cameras", "meshes", "images", "materials")}


def test_views_of_the_cube_bake_back_into_its_own_uv_map(object_bake, tmp_path):
    bake = module("geometry.bake")
    scene = bpy.context.scene
    cube = bpy.data.objects["Cube"]
    cube.data.materials.clear()
    cube.data.materials.append(_emission_material("gradient"))
    # an occluder in front of the cube, pure red (the cube's red is 0.2 everywhere)
    bpy.ops.mesh.primitive_cube_add(size=0.6, location=(0.0, -2.4, 0.3))
    occluder = bpy.context.active_object
    occluder.data.materials.append(_emission_material("red", (1.0, 0.0, 0.0)))
    size, view_size = 96, 128
    _setup_render(scene, view_size)
    uv_before = np.empty(len(cube.data.loops) * 2, np.float32)
    cube.data.uv_layers.active.data.foreach_get("uv", uv_before)

    depsgraph = bpy.context.evaluated_depsgraph_get()
    counts = _datablock_counts()
    views = object_bake.auto_views([cube], depsgraph, 6, view_size, view_size)
    cameras = [view.camera() for view in views]
    depths = object_bake.view_depths(cameras, depsgraph)
    texels = object_bake.object_texels(cube, depsgraph, size)
    assert _datablock_counts() == counts  # the bridge made nothing

    images = [_render_view(scene, view, tmp_path, i) for i, view in enumerate(views)]
    assert (images[0][..., 0] > 0.9).any()  # the front view sees the occluder
    texture, gathered = bake.bake_texture(texels, [bake.BakeView(c, i, d) for c, i, d in zip(cameras, images, depths)])

    occluder.hide_render = True
    truth = _blender_bake(cube, size)
    covered = texels.mask
    seen = np.zeros(size * size, bool)
    seen[texels.index[gathered.seen]] = True
    seen = seen.reshape(size, size)
    error = np.abs(texture - truth).max(axis=2)
    assert seen.sum() > 0.8 * covered.sum()
    assert (error[seen] <= 2.0 / 255.0).mean() >= 0.99
    assert texture[..., 0].max() < _srgb(0.2) + 3.0 / 255.0  # nothing of the red occluder
    assert np.isfinite(texture).all() and (texture[~covered].min() > 0.3)  # the gutter is filled, not black

    uv_after = np.empty_like(uv_before)
    cube.data.uv_layers.active.data.foreach_get("uv", uv_after)
    assert uv_after.tobytes() == uv_before.tobytes()

    # the baked texture, rendered through the cube's UV map from a view, gives that view back
    _use_texture(cube, module("bridge.pixels").new_display_image("baked", texture))
    occluder.hide_render = False
    side = 3
    again = _render_view(scene, views[side], tmp_path, 99)
    inner = np.isfinite(depths[side])
    for _ in range(2):  # not the silhouette: there the views faded out and the texels were filled
        inner[1:-1, 1:-1] &= inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
    difference = np.abs(again - images[side]).max(axis=2)[inner]
    assert inner.sum() > 3000
    # 8-bit texture and render, a 96^2 texture under 128^2 views: a few levels at the most
    assert (difference <= 3.0 / 255.0).mean() >= 0.98 and difference.max() <= 8.0 / 255.0


def _use_texture(obj, image):
    """Replace the object's material by an emission of ``image`` through a UV Map node naming its render UV map."""
    material = bpy.data.materials.new("baked")
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    emission = tree.nodes.new("ShaderNodeEmission")
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    uv_map = tree.nodes.new("ShaderNodeUVMap")
    uv_map.uv_map = obj.data.uv_layers.active.name
    tree.links.new(uv_map.outputs["UV"], texture.inputs["Vector"])
    tree.links.new(texture.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs[0], output.inputs["Surface"])
    obj.data.materials.clear()
    obj.data.materials.append(material)


def test_numpy_projection_matches_calc_matrix_camera():
    views_module = module("geometry.views")
    scene = bpy.context.scene
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for ortho in (False, True):
        for width, height in ((160, 96), (96, 160)):
            view = views_module.place_views(np.zeros(3), 1.5, 1, width, height, ortho=ortho, lens=35.0)[0]
            data = bpy.data.cameras.new("check")
            camera = bpy.data.objects.new("check", data)
            try:
                data.type = "ORTHO" if ortho else "PERSP"
                data.lens, data.sensor_width, data.sensor_fit = view.lens, view.sensor_width, "AUTO"
                if ortho:
                    data.ortho_scale = view.ortho_scale
                data.clip_start, data.clip_end = view.clip_start, view.clip_end
                blender = np.array(camera.calc_matrix_camera(depsgraph, x=width, y=height))
            finally:
                bpy.data.objects.remove(camera)
                bpy.data.cameras.remove(data)
            np.testing.assert_allclose(views_module.projection_matrix(view), blender, rtol=1e-5, atol=1e-6)


def test_a_mesh_without_a_uv_map_is_refused_by_name(object_bake):
    cube = bpy.data.objects["Cube"]
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    with pytest.raises(ValueError, match="'Cube' has no UV map: unwrap it"):
        object_bake.object_texels(cube, bpy.context.evaluated_depsgraph_get(), 64)


def test_collection_cameras_in_name_order(object_bake):
    scene = bpy.context.scene
    collection = bpy.data.collections.new("Views")
    scene.collection.children.link(collection)
    for name, x in (("b", 1.0), ("a", -1.0)):
        camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        camera.location = (x, -5.0, 0.0)
        collection.objects.link(camera)
    cameras = object_bake.collection_views(scene, collection, bpy.context.evaluated_depsgraph_get(), 64, 64)
    assert [c.location[0] for c in cameras] == [-1.0, 1.0]
    recipe = object_bake.camera_recipe(bpy.data.objects["a"], 64, 48)
    views_module = module("geometry.views")
    auto = views_module.place_views(np.zeros(3), 1.0, 1, 64, 48)[0].recipe()
    assert set(recipe) == set(auto)  # one recipe entry shape for placed and artists' cameras
    assert recipe["matrix_world"][0][3] == -1.0 and recipe["projection"] == "PERSP" and recipe["height"] == 48
    with pytest.raises(ValueError, match="'Empty' holds no cameras"):
        object_bake.collection_views(scene, bpy.data.collections.new("Empty"), bpy.context.evaluated_depsgraph_get(),
                                     64, 64)


def _bake_float(obj, size, bake_type, **settings):
    """Blender's bake into a float image in the render UV map (RGBA; all zero where it wrote nothing)."""
    image = bpy.data.images.new("truth", size, size, float_buffer=True)
    image.pixels.foreach_set(np.full(size * size * 4, np.nan, np.float32))
    material = obj.active_material
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    material.node_tree.nodes.active = node
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.bake(type=bake_type, margin=0, **settings)
    pixels = np.empty(size * size * 4, np.float32)
    image.pixels.foreach_get(pixels)
    material.node_tree.nodes.remove(node)
    bpy.data.images.remove(image)
    return np.flipud(pixels.reshape(size, size, 4))


def test_texels_of_a_modified_mesh_match_blenders_own_bake(object_bake):
    """World position and normal per texel of Suzanne with a subdivision and a displacement (evaluated
    mesh, smooth shading) against Blender's bake of a position emission and of object-space normals."""
    for obj in list(bpy.data.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_monkey_add(location=(0.3, -0.2, 0.1))
    monkey = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    subdivision = monkey.modifiers.new("subdivision", "SUBSURF")
    subdivision.levels = subdivision.render_levels = 1  # a bake evaluates for render, the depsgraph for the viewport
    monkey.modifiers.new("cast", "CAST").factor = 0.3
    material = bpy.data.materials.new("position")
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    emission = tree.nodes.new("ShaderNodeEmission")
    position = tree.nodes.new("ShaderNodeNewGeometry")
    offset = tree.nodes.new("ShaderNodeVectorMath")  # + 10: no covered texel bakes to 0, what Blender leaves elsewhere
    offset.inputs[1].default_value = (10.0, 10.0, 10.0)
    tree.links.new(position.outputs["Position"], offset.inputs[0])
    tree.links.new(offset.outputs[0], emission.inputs["Color"])
    tree.links.new(emission.outputs[0], output.inputs["Surface"])
    monkey.data.materials.append(material)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.filter_width = 0.01  # the bake samples the texel centre, not a filtered area around it
    size = 128

    texels = object_bake.object_texels(monkey, bpy.context.evaluated_depsgraph_get(), size)
    baked = _bake_float(monkey, size, "EMIT").reshape(-1, 4)
    baked_position = baked[:, :3]
    baked_normal = _bake_float(monkey, size, "NORMAL", normal_space="OBJECT").reshape(-1, 4)[:, :3] * 2.0 - 1.0

    blender_covered = (baked_position != 0).any(axis=1)
    baked_position = baked_position - 10.0
    ours = np.zeros(size * size, bool)
    ours[texels.index] = True
    both = ours & blender_covered
    assert both.sum() >= 0.99 * ours.sum() and both.sum() >= 0.99 * blender_covered.sum()
    rank = np.full(size * size, -1)
    rank[texels.index] = np.arange(len(texels.index))
    mine = rank[both]
    # the same surface point per texel, to float32 precision (Cycles' colours are float32 through the shader)
    distance = np.linalg.norm(texels.world_position[mine] - baked_position[both], axis=1)
    assert np.percentile(distance, 99) < 0.01 * texels.spacing and distance.max() < 0.05 * texels.spacing
    cosine = (texels.normal[mine] * baked_normal[both]).sum(axis=1) / np.linalg.norm(baked_normal[both], axis=1)
    assert np.percentile(cosine, 1) > np.cos(np.radians(0.5))


@pytest.mark.parametrize("ortho", [False, True])
def test_auto_views_frame_every_selected_object(object_bake, ortho):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(3.0, 1.0, 0.5))
    sphere = bpy.context.active_object
    cube = bpy.data.objects["Cube"]
    cube.modifiers.new("bevel", "BEVEL")
    counts = _datablock_counts()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    views = object_bake.auto_views([cube, sphere], depsgraph, 8, 96, 64, ortho=ortho)
    assert _datablock_counts() == counts
    points = np.concatenate([np.array([obj.matrix_world @ v.co for v in obj.data.vertices]) for obj in (cube, sphere)])
    for view in views:
        camera = view.camera()
        assert camera.ortho == ortho
        pixel, depth = camera.project(points)
        assert (pixel[:, 0] > 0).all() and (pixel[:, 0] < 96).all() and (pixel[:, 1] > 0).all() and (pixel[:, 1] < 64).all()
        assert (depth > camera.clip_range[0]).all()
    assert views[0].world_matrix[1, 3] < -1.0  # the front view first


def test_objects_sharing_one_mesh_get_one_texture_and_control_images_come_per_view(object_bake):
    cube = bpy.data.objects["Cube"]
    twin = cube.copy()  # shares the mesh
    twin.location = (3.0, 0.0, 0.0)
    bpy.context.scene.collection.objects.link(twin)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    views = object_bake.auto_views([cube, twin], depsgraph, 4, 64, 64)
    passes = object_bake.view_passes([v.camera() for v in views], depsgraph, "DEPTH")
    assert all(p.control_image.shape == (64, 64, 3) and p.control_image.max() == 1.0 for p in passes)
    normal_passes = object_bake.view_passes([views[0].camera()], depsgraph, "NORMAL")
    assert normal_passes[0].control_image.shape == (64, 64, 3)
    # each view paints one flat colour: the shared texture mixes the views, never a per-object copy
    images = [np.full((64, 64, 3), k / 4.0, np.float32) for k in range(len(views))]
    baked = object_bake.bake_objects([cube, twin], depsgraph, passes, images, 32)
    assert len(baked) == 1 and sorted(baked[0].object_names) == ["Cube", twin.name]
    assert baked[0].uv_name == cube.data.uv_layers.active.name and baked[0].shared_texels == 0
    texture = baked[0].texture
    assert texture.shape == (32, 32, 3) and texture.min() >= 0.0 and texture.max() <= 0.75 + 1e-6
    with pytest.raises(ValueError, match="one image per view"):
        object_bake.bake_objects([cube], depsgraph, passes, images[:2], 32)
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    plane.data.uv_layers.remove(plane.data.uv_layers[0])
    with pytest.raises(ValueError, match=f"'{plane.name}' has no UV map"):
        object_bake.bake_objects([cube, plane], depsgraph, passes, images, 32)
