"""Whole Object with Material Maps: each view's maps baked like the colour into each mesh's render UV map, the
normal map in that UV map's tangent space; Height refused. Tiny SD + tiny Marigold (noise: plumbing)."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts
from test_object_target import select, whole  # noqa: F401 - the fixture is used by name


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def feeding(socket):
    return socket.links[0].from_node if socket.is_linked else None


@pytest.fixture
def whole_maps(whole, tiny_marigold_intrinsics, tiny_marigold_normals):
    whole.pbr_model = str(tiny_marigold_intrinsics)
    whole.normals_model = str(tiny_marigold_normals)
    return whole


def test_whole_object_maps_are_baked_with_the_colour_weights_and_wired(whole_maps):
    whole_maps.pbr_maps = {"ROUGHNESS", "NORMAL"}
    whole_maps.keep_view_images = True
    cube = bpy.data.objects["Cube"]
    select(cube)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    lit = whole_maps.result_image
    roughness = bpy.data.images[f"{lit.name} roughness"]
    normal = bpy.data.images[f"{lit.name} normal"]
    assert tuple(roughness.size) == tuple(normal.size) == (256, 256)
    assert roughness["latent_textures"]["pbr_views"] == 3
    material = cube.active_material
    shader = module("bridge.results").principled_bsdf(material.node_tree)
    assert feeding(shader.inputs["Roughness"]).image == roughness
    normal_map = feeding(shader.inputs["Normal"])
    render_uv = module("bridge.object_bake").render_uv_layer(cube).name
    assert normal_map.uv_map == render_uv and feeding(normal_map.inputs["Color"]).image == normal


def test_each_views_maps_are_baked_exactly_like_the_colour(whole_maps):
    """The job itself (real engine, tiny models): the roughness and albedo textures are ``bake_mesh`` of the
    engine's maps of each view image, with the colour's weights, fill and gutter -- exactly."""
    import dataclasses

    whole_maps.pbr_maps = {"ALBEDO", "ROUGHNESS", "NORMAL"}
    cube = bpy.data.objects["Cube"]
    select(cube)
    targets = module("bridge.targets")
    object_target, object_bake = module("bridge.object_target"), module("bridge.object_bake")
    plan = targets.prepare(bpy.context)
    job = object_target.ObjectJob(plan, previews=False)
    captured = plan.target_capture
    engine = module("engine").get_engine(plan.options)
    result = job.work(engine)
    assert job.maps_failure is None
    (maps,) = job.maps_result
    per_view = [engine.material_maps(dataclasses.replace(plan.material_maps, image=view[..., :3].copy()))
                for view in result.views]
    views = object_bake.bake_views(captured.passes, [m.maps["roughness"][..., None] for m in per_view])
    expected = object_bake.bake_mesh(captured.meshes[0], views).texture[..., 0]
    np.testing.assert_array_equal(maps.maps["roughness"], expected)
    views = object_bake.bake_views(captured.passes, [m.maps["albedo"] for m in per_view])
    np.testing.assert_array_equal(maps.maps["albedo"], object_bake.bake_mesh(captured.meshes[0], views).texture)
    # the same gather as the colour texture: the texels the colour saw are the texels the maps saw
    assert maps.maps["normal"].shape == (256, 256, 3)
    decoded = maps.maps["normal"] * 2.0 - 1.0
    covered = captured.meshes[0].texels[0].mask
    np.testing.assert_allclose(np.linalg.norm(decoded[covered], axis=1), 1.0, atol=1e-5)


def test_height_on_whole_object_is_refused_before_anything_runs(whole_maps):
    whole_maps.pbr_maps = {"ALBEDO", "HEIGHT"}
    select(bpy.data.objects["Cube"])
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Height maps are made for flat textures only.*Whole Object"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before


def test_a_perfect_normals_model_bakes_flat_blue_into_the_render_uv_map():
    """Whole Object's normal chain with the geometry's own camera-frame normals as every view's answer: views
    around a rotated, scaled cube and a smooth sphere (Blender's tangents of their render UV maps, shared
    mesh instances pooled) bake to (0.5, 0.5, 1.0) at every texel a view saw."""
    geometry, object_bake, object_maps = module("geometry"), module("bridge.object_bake"), module("bridge.object_maps")
    tangent_bake, tangent_normals = module("geometry.tangent_bake"), module("geometry.tangent_normals")
    cube = bpy.data.objects["Cube"]
    cube.rotation_euler = (0.4, 0.2, 0.7)
    cube.scale = (1.2, 0.8, 1.0)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=16, ring_count=8, location=(3.0, 0.0, 0.0))
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    objects = [cube, sphere]
    cameras = [view.camera() for view in object_bake.auto_views(objects, depsgraph, 6, 96, 96)]
    scene = module("bridge.geometry").scene_triangles(depsgraph)
    views = []
    for camera in cameras:
        hits = geometry.rasterize(camera, scene.corners)
        normals = geometry.view_normals(camera, scene.corners, hits, scene.corner_normals)
        world = tangent_normals.camera_to_world(normals, camera.world_matrix).astype(np.float32)
        views.append(module("geometry.bake").BakeView(camera, world, hits.depth))
    surfaces = object_bake.mesh_surfaces(objects, depsgraph)
    frames = object_maps.capture_frames(surfaces, depsgraph)
    for surface in surfaces:
        mesh = surface.texels(128)
        texture = tangent_bake.bake_tangent_normals(mesh.texels, views, [f for f, _ in frames[surface.mesh_name]],
                                                    [c for _, c in frames[surface.mesh_name]])
        first = mesh.texels[0]
        keep = module("geometry.bake").gather_views(first, views).seen
        if surface.mesh_name == cube.data.name:
            # a view pixel on a cube edge mixes two faces' normals (as it mixes their colours): a rounded edge.
            # Compared: texels farther than two view pixels (~0.1 m here) from every edge.
            local = (first.world_position - np.array(cube.matrix_world.translation)) @ np.linalg.inv(
                np.array(cube.matrix_world.to_3x3())).T
            keep &= (np.abs(local) > 1.0 - 0.12).sum(axis=1) < 2
        texels = texture.reshape(-1, 3)[first.index[keep]]
        assert len(texels) > 1000
        error = np.abs(texels - [0.5, 0.5, 1.0]).max(axis=1)  # float32 normals and bilinear samples
        if surface.mesh_name == cube.data.name:  # flat faces: exact but for a few texels seen very obliquely
            assert np.median(error) < 1e-4 and np.percentile(error, 99) < 1e-3, error.max()
        else:  # a bilinear sample of a curved surface's normals: within the normal's turn over one view pixel
            # (pixel ~0.05 m on a 1 m sphere: 0.05 rad, 0.025 in colour)
            assert np.median(error) < 1e-3 and error.max() < 0.025, error.max()
