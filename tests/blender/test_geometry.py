"""Depth and normal images of the evaluated scene (bridge/geometry.py) on scenes computed by hand."""

import math

import bpy
import numpy as np
import pytest
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from harness import ADDON_MODULE


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def geometry():
    return module("bridge.geometry")


@pytest.fixture
def empty_stage():
    """The factory scene without its cube and light; the camera at (0, 0, 5) looking straight down."""
    for name in ("Cube", "Light"):
        bpy.data.objects.remove(bpy.data.objects[name])
    camera = bpy.context.scene.camera
    camera.location = (0.0, 0.0, 5.0)
    camera.rotation_euler = (0.0, 0.0, 0.0)
    return camera


def passes(geometry, width=64, height=48):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return geometry.geometry_passes(bpy.context.scene, depsgraph, width, height)


def add_plane(size=20.0, location=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0)):
    bpy.ops.mesh.primitive_plane_add(size=size, location=location, rotation=rotation)
    return bpy.context.active_object


def test_plane_at_a_known_distance(geometry, empty_stage):
    add_plane()
    result = passes(geometry)
    assert result.hits.covered.all()
    np.testing.assert_allclose(result.depth, 5.0, rtol=1e-5)
    np.testing.assert_allclose(result.normals[..., 2], 1.0, atol=1e-5)
    depth_image = geometry.control_image(bpy.context.scene, bpy.context.evaluated_depsgraph_get(), "DEPTH", 64, 48)
    assert depth_image.shape == (48, 64, 3) and depth_image.dtype == np.float32
    np.testing.assert_allclose(depth_image, 1.0)  # one depth everywhere: all nearest
    normal_image = geometry.control_image(bpy.context.scene, bpy.context.evaluated_depsgraph_get(), "NORMAL", 64, 48)
    np.testing.assert_allclose(normal_image.reshape(-1, 3), np.broadcast_to([0.5, 0.5, 1.0], (64 * 48, 3)), atol=1e-5)


def test_tilted_plane_through_an_ortho_camera(geometry, empty_stage):
    empty_stage.data.type = "ORTHO"
    empty_stage.data.ortho_scale = 4.0
    angle = math.radians(30.0)
    add_plane(rotation=(0.0, angle, 0.0))  # z = -tan(30) x, normal (sin 30, 0, cos 30)
    result = passes(geometry)
    x = (np.arange(64) + 0.5) / 64 * 4.0 - 2.0  # the ortho scale spans the wider side
    expected = 5.0 + math.tan(angle) * x
    np.testing.assert_allclose(result.depth, np.broadcast_to(expected, (48, 64)), rtol=1e-5)
    np.testing.assert_allclose(result.normals.reshape(-1, 3),
                               np.broadcast_to([math.sin(angle), 0.0, math.cos(angle)], (64 * 48, 3)), atol=1e-5)
    image = geometry.control_image(bpy.context.scene, bpy.context.evaluated_depsgraph_get(), "NORMAL", 64, 48)
    # normalbae: red is the component towards the image's left, so a surface facing right is darker red.
    np.testing.assert_allclose(image[0, 0], [(1 - math.sin(angle)) / 2, 0.5, (1 + math.cos(angle)) / 2], atol=1e-5)
    depth_image = geometry.control_image(bpy.context.scene, bpy.context.evaluated_depsgraph_get(), "DEPTH", 64, 48)
    assert depth_image[0, 0, 0] == pytest.approx(1.0) and depth_image[0, -1, 0] == pytest.approx(0.1, abs=1e-5)


def test_cube_edge_seen_by_an_ortho_camera(geometry, empty_stage):
    """A cube turned 45 degrees, seen edge-on from +X: depth = 5 - sqrt(2) + |offset| across the edge."""
    bpy.ops.mesh.primitive_cube_add(size=2.0, rotation=(0.0, 0.0, math.radians(45.0)))
    empty_stage.location = (5.0, 0.0, 0.0)
    empty_stage.rotation_euler = (math.radians(90.0), 0.0, math.radians(90.0))
    empty_stage.data.type = "ORTHO"
    empty_stage.data.ortho_scale = 4.0
    bpy.context.view_layer.update()
    right = np.array(empty_stage.matrix_world.to_3x3() @ Vector((1, 0, 0)))
    assert abs(abs(right[1]) - 1.0) < 1e-6  # the camera's right is world +-Y
    result = passes(geometry, 64, 64)
    offset = (np.arange(64) + 0.5) / 64 * 4.0 - 2.0
    height = offset[::-1]
    on_cube = (np.abs(offset)[None, :] < math.sqrt(2) - 0.05) & (np.abs(height)[:, None] < 0.95)
    off_cube = (np.abs(offset)[None, :] > math.sqrt(2) + 0.05) | (np.abs(height)[:, None] > 1.05)
    expected = np.broadcast_to(5.0 - math.sqrt(2) + np.abs(offset)[None, :], (64, 64))
    np.testing.assert_allclose(result.depth[on_cube], expected[on_cube], rtol=1e-5)
    assert np.isinf(result.depth[off_cube]).all()
    # Left half faces the camera's left, right half its right, both 45 degrees towards the viewer.
    s = math.sqrt(0.5)
    left = on_cube & (offset[None, :] < -0.05)
    right_side = on_cube & (offset[None, :] > 0.05)
    np.testing.assert_allclose(result.normals[left], np.broadcast_to([-s, 0, s], (left.sum(), 3)), atol=1e-5)
    np.testing.assert_allclose(result.normals[right_side], np.broadcast_to([s, 0, s], (right_side.sum(), 3)), atol=1e-5)


def test_render_hidden_objects_do_not_occlude_but_viewport_hidden_ones_do(geometry, empty_stage):
    add_plane()
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(0.0, 0.0, 2.0))  # top face at z = 3
    cube = bpy.context.active_object
    assert passes(geometry).depth[24, 32] == pytest.approx(2.0, rel=1e-5)
    cube.hide_render = True
    np.testing.assert_allclose(passes(geometry).depth, 5.0, rtol=1e-5)
    cube.hide_render = False
    cube.hide_set(True)  # hidden in the viewport only: a render still shows it
    assert passes(geometry).depth[24, 32] == pytest.approx(2.0, rel=1e-5)


def test_modifiers_are_applied(geometry, empty_stage):
    plane = add_plane()
    displace = plane.modifiers.new("lift", "DISPLACE")
    displace.strength = 2.0
    displace.mid_level = 0.0  # no texture: every vertex moves by strength along its normal
    np.testing.assert_allclose(passes(geometry).depth, 3.0, rtol=1e-5)


def test_collection_instances_are_drawn_where_they_are_instanced(geometry, empty_stage):
    source = bpy.data.collections.new("Instanced")
    bpy.context.scene.collection.children.link(source)
    plane = add_plane()
    for collection in plane.users_collection:
        collection.objects.unlink(plane)
    source.objects.link(plane)
    source.hide_render = True  # the usual setup: the source hidden, its instances rendered
    bpy.context.view_layer.layer_collection.children[source.name].exclude = True
    holder = bpy.data.objects.new("Holder", None)
    holder.instance_type = "COLLECTION"
    holder.instance_collection = source
    holder.location = (0.0, 0.0, 1.5)
    bpy.context.scene.collection.objects.link(holder)
    np.testing.assert_allclose(passes(geometry).depth, 3.5, rtol=1e-5)


def test_depth_matches_blender_ray_casts_on_a_smooth_suzanne(geometry):
    """An independent check of frame and depth: mathutils' BVH ray cast through every pixel centre."""
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    monkey = bpy.context.active_object
    monkey.modifiers.new("smooth", "SUBSURF")
    camera = bpy.context.scene.camera
    camera.data.shift_x, camera.data.shift_y = 0.08, -0.05
    camera.data.sensor_fit = "VERTICAL"
    camera.data.lens = 120.0
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    result = passes(geometry, 48, 32)
    tree = BVHTree.FromObject(monkey, depsgraph)  # object space; the monkey sits at the identity transform
    origins, directions = result.camera.pixel_rays()
    forward = result.camera.forward
    cast = np.full((32, 48), np.inf)
    for row in range(32):
        for column in range(48):
            hit, _, _, distance = tree.ray_cast(Vector(origins[row, column]), Vector(directions[row, column]))
            if hit is not None:
                cast[row, column] = distance * directions[row, column] @ forward
    both = np.isfinite(cast) & result.hits.covered
    assert both.sum() > 0.25 * both.size
    assert (np.isfinite(cast) == result.hits.covered).mean() > 0.99
    np.testing.assert_allclose(result.depth[both], cast[both], rtol=1e-4)


def test_frame_is_the_projected_uvs_frame(geometry, empty_stage):
    """A small square's corners, projected the way PROJECT writes UVs, bound the pixels the z-buffer covers."""
    empty_stage.data.sensor_fit = "VERTICAL"
    empty_stage.data.shift_x = 0.15
    empty_stage.location = (0.3, -0.2, 5.0)
    plane = add_plane(size=1.0, location=(0.4, 0.2, 0.0))
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    result = passes(geometry, 80, 40)
    view = geometry.view_camera(bpy.context.scene, empty_stage, 80, 40, depsgraph)
    uv = view.uv(np.array([plane.matrix_world @ v.co for v in plane.data.vertices]))
    columns = np.flatnonzero(result.hits.covered.any(axis=0))
    rows_from_bottom = 39 - np.flatnonzero(result.hits.covered.any(axis=1))
    assert columns.min() == pytest.approx(uv[:, 0].min() * 80, abs=1.0)
    assert columns.max() + 1 == pytest.approx(uv[:, 0].max() * 80, abs=1.0)
    assert rows_from_bottom.min() == pytest.approx(uv[:, 1].min() * 40, abs=1.0)
    assert rows_from_bottom.max() + 1 == pytest.approx(uv[:, 1].max() * 40, abs=1.0)


def test_no_camera_is_a_clear_error(geometry):
    bpy.context.scene.camera = None
    with pytest.raises(ValueError, match="no camera"):
        passes(geometry)


def _geometry_frames():
    """tests/geometry/geometry_frames.py: the hand-built frames the numpy tests rely on."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "geometry" / "geometry_frames.py"
    spec = importlib.util.spec_from_file_location("lt_geometry_frames", path)
    frames = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frames)
    return frames


@pytest.mark.parametrize("width, height, shift", [(64, 48, (0.1, -0.05)), (40, 40, (0.0, 0.0)), (48, 64, (0.0, 0.2))])
def test_the_numpy_tests_frames_are_blenders(width, height, shift):
    """The projections tests/geometry builds by hand are exactly what calc_matrix_camera returns."""
    frames = _geometry_frames()
    camera = bpy.context.scene.camera
    data = camera.data
    data.lens, data.sensor_width, data.sensor_fit = 50.0, 36.0, "AUTO"
    data.clip_start, data.clip_end = 0.1, 100.0
    data.shift_x, data.shift_y = shift
    depsgraph = bpy.context.evaluated_depsgraph_get()
    blender = np.array(camera.calc_matrix_camera(depsgraph, x=width, y=height))
    np.testing.assert_allclose(blender, frames.perspective(50.0, 36.0, width, height, 0.1, 100.0, *shift), atol=1e-5)
    data.type, data.ortho_scale = "ORTHO", 4.0
    data.shift_x = data.shift_y = 0.0
    blender = np.array(camera.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=width, y=height))
    np.testing.assert_allclose(blender, frames.orthographic(4.0, width, height, 0.1, 100.0), atol=1e-5)
