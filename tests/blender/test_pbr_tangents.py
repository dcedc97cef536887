"""bridge/pbr_tangents.py: Blender's own MikkTSpace tangents per triangle corner, n-gons included, and the
normal map of a perfect normals model (the geometry's own normals) coming out flat blue through them."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE

# view_normals and the rasteriser's barycentrics are float32; Blender's tangents and normals too.
FLOAT32_EXACT = 2e-4


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def ngon_cylinder():
    bpy.ops.mesh.primitive_cylinder_add(vertices=10, end_fill_type="NGON", calc_uvs=True)
    return bpy.context.active_object


def test_a_mesh_with_ngons_gets_tangents_and_leaves_nothing_behind():
    tangents = module("bridge.pbr_tangents")
    obj = ngon_cylinder()
    mesh = obj.data
    sizes = [len(p.vertices) for p in mesh.polygons]
    assert max(sizes) == 10 and 4 in sizes
    with pytest.raises(RuntimeError, match="tris/quads"):  # why the module exists
        mesh.calc_tangents(uvmap=mesh.uv_layers.active.name)
    meshes = len(bpy.data.meshes)
    tangent, sign = tangents.corner_tangents(mesh, mesh.uv_layers.active.name)
    assert len(bpy.data.meshes) == meshes and len(mesh.polygons) == len(sizes)  # no orphan, mesh unchanged
    normals = np.array([list(n.vector) for n in mesh.corner_normals])
    np.testing.assert_allclose(np.linalg.norm(tangent, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.einsum("ij,ij->i", tangent, normals), 0.0, atol=1e-5)
    assert set(np.unique(sign)) <= {-1.0, 1.0}
    # The flat caps: MikkTSpace's tangent of a planar, linearly mapped face is its UV gradient dP/du.
    uv = np.array([list(d.uv) for d in mesh.uv_layers.active.data])
    positions = np.array([list(mesh.vertices[l.vertex_index].co) for l in mesh.loops])
    for polygon in mesh.polygons:
        if polygon.loop_total != 10:
            continue
        loops = list(polygon.loop_indices)
        p, t = positions[loops[:3]], uv[loops[:3]]
        e1, e2, d1, d2 = p[1] - p[0], p[2] - p[0], t[1] - t[0], t[2] - t[0]
        dpdu = (e1 * d2[1] - e2 * d1[1]) / (d1[0] * d2[1] - d2[0] * d1[1])
        expected = dpdu / np.linalg.norm(dpdu)
        np.testing.assert_allclose(tangent[loops], np.tile(expected, (10, 1)), atol=1e-4)


def test_quads_keep_the_tangents_blender_gives_them():
    """Only n-gons are triangulated: a quad mesh's tangents are calc_tangents' own."""
    tangents = module("bridge.pbr_tangents")
    bpy.ops.mesh.primitive_uv_sphere_add(segments=12, ring_count=8)
    mesh = bpy.context.active_object.data
    bpy.ops.object.shade_smooth()
    name = mesh.uv_layers.active.name
    tangent, sign = tangents.corner_tangents(mesh, name)
    mesh.calc_tangents(uvmap=name)
    own = np.array([list(l.tangent) for l in mesh.loops])
    own_sign = np.array([l.bitangent_sign for l in mesh.loops])
    mesh.free_tangents()
    np.testing.assert_array_equal(tangent, own)
    np.testing.assert_array_equal(sign, own_sign)


@pytest.mark.parametrize("shape", ["plane", "ngon_cylinder", "smooth_sphere"])
def test_the_geometry_seen_by_the_camera_is_flat_blue(shape):
    """A perfect normals model paints the geometry's own camera-frame normals: every pixel of the object
    maps to (0, 0, 1) in the tangent space of the UV map, whatever the object's rotation and scale."""
    geometry = module("bridge.geometry")
    tangents = module("bridge.pbr_tangents")
    tangent_normals = module("geometry.tangent_normals")
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    if shape == "plane":
        bpy.ops.mesh.primitive_plane_add(size=2.0)
    elif shape == "ngon_cylinder":
        ngon_cylinder()
    else:
        bpy.ops.mesh.primitive_uv_sphere_add(segments=16, ring_count=8)
        bpy.ops.object.shade_smooth()
    obj = bpy.context.active_object
    obj.rotation_euler = (0.7, 0.3, 0.4)
    obj.scale = (1.0, 1.6, 0.7)
    scene = bpy.context.scene
    scene.camera.location = (0.5, -6.0, 4.0)
    scene.camera.rotation_euler = (np.radians(58), 0.0, np.radians(5))
    depsgraph = bpy.context.evaluated_depsgraph_get()
    frames, corners_world = tangents.tangent_frames(obj, depsgraph, obj.data.uv_layers.active.name)
    camera = geometry.view_camera(scene, scene.camera, 64, 64, depsgraph)
    hits = module("geometry").rasterize(camera, corners_world)
    world_normals = frames.normal @ np.linalg.inv(frames.linear[0])  # the corner normals, in world space
    normals_camera = module("geometry").view_normals(camera, corners_world, hits, world_normals)
    front = hits.covered.copy()
    # view_normals shows a face seen from behind with its back side: only faces seen from the front
    facing = np.einsum("nj,nj->n", np.cross(corners_world[:, 1] - corners_world[:, 0],
                                            corners_world[:, 2] - corners_world[:, 0]),
                       camera.location - corners_world[:, 0]) > 0
    front[front] = facing[hits.triangle[front]]
    assert front.sum() > 200
    mapped = tangent_normals.pixel_tangent_normals(normals_camera, camera.world_matrix, hits.triangle,
                                                   hits.barycentric, frames)
    np.testing.assert_allclose(mapped[front], np.tile([0.0, 0.0, 1.0], (front.sum(), 1)), atol=FLOAT32_EXACT)


def cycles_normal_map_render(obj, size, colour):
    """What Cycles renders through a Normal Map node (Tangent Space, the object's UV map) fed by ``colour``:
    the shading normal it gives, baked in object space (Cycles' own tangents, interpolation and formula)."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    out = bpy.data.images.new("baked", size, size, float_buffer=True)
    out.colorspace_settings.name = "Non-Color"
    material = bpy.data.materials.new("bake")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    obj.data.materials.clear()
    obj.data.materials.append(material)
    tree = material.node_tree
    shader = tree.nodes.new("ShaderNodeBsdfDiffuse")
    output = next(n for n in tree.nodes if n.type == "OUTPUT_MATERIAL")
    tree.links.new(shader.outputs["BSDF"], output.inputs["Surface"])
    normal_map = tree.nodes.new("ShaderNodeNormalMap")
    normal_map.space, normal_map.uv_map = "TANGENT", obj.data.uv_layers.active.name
    constant = tree.nodes.new("ShaderNodeRGB")
    constant.outputs[0].default_value = (*colour, 1.0)
    tree.links.new(constant.outputs[0], normal_map.inputs["Color"])
    tree.links.new(normal_map.outputs["Normal"], shader.inputs["Normal"])
    target = tree.nodes.new("ShaderNodeTexImage")
    target.image = out
    tree.nodes.active = target
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.object.bake(type="NORMAL", normal_space="OBJECT", margin=0) == {"FINISHED"}
    return module("bridge.pixels").read_pixels(out)[..., :3] * 2.0 - 1.0


@pytest.mark.parametrize("shape", ["smooth_sphere", "ngon_cylinder"])
def test_the_frames_decode_as_cycles_renders_the_normal_map_node(shape):
    """Blender itself as the oracle: a tangent-space colour through Cycles' Normal Map node (its tangents, the
    quads kept) gives, at every texel, the normal ``tangent_to_world`` computes with these frames -- the
    formula ``world_to_tangent`` inverts (tests/geometry/test_tangent_normals.py). (Cycles' *tangent-space
    normal bake* is not the oracle: on a quad sphere it differs from its own Normal Map node by up to 1.7
    degrees, as tangents of triangulated quads do.)"""
    tangents, tangent_normals = module("bridge.pbr_tangents"), module("geometry.tangent_normals")
    uv_raster, bake = module("geometry.uv_raster"), module("bridge.object_bake")
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    if shape == "smooth_sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(segments=16, ring_count=8)
        bpy.ops.object.shade_smooth()
    else:
        ngon_cylinder()
    obj = bpy.context.active_object
    obj.rotation_euler = (0.5, 0.2, 0.3)
    obj.scale = (1.0, 1.4, 0.8)
    size, colour = 64, (0.75, 0.4, 0.85)
    rendered = cycles_normal_map_render(obj, size, colour)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    uv_name = obj.data.uv_layers.active.name
    frames, corners = tangents.tangent_frames(obj, depsgraph, uv_name)
    uv, positions, normals = bake.object_triangles(obj, depsgraph, uv_name)
    texels = uv_raster.rasterize_uv_triangles(uv, positions, normals, size)
    weights = tangent_normals.barycentric_of_points(texels.position, (corners - texels.origin)[texels.triangle])
    world = tangent_normals.tangent_to_world(np.tile(colour, (len(weights), 1)), texels.triangle, weights, frames)
    # the bake writes object space as M^-1 n (a direction), whatever the scale
    expected = world @ np.linalg.inv(frames.linear[0]).T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    found = rendered.reshape(-1, 3)[texels.index]
    found /= np.linalg.norm(found, axis=1, keepdims=True)
    degrees = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", found, expected), -1.0, 1.0)))
    # float32 through both; a texel centre on a triangle edge may be taken on either side (same values there)
    assert np.median(degrees) < 0.01 and np.percentile(degrees, 99) < 0.1, (np.median(degrees), degrees.max())
