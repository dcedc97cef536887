"""Whole Object keeps the UI live (issue 23 item 7): the capture's rasterising and the texture's encoding run on
the worker, from triangles copied out of Blender in one pass; the pixels are the same as on the old path.

Times are compared only as ratios measured in the same process (the main thread's share of the capture work,
packing encoded bytes against encoding on the main thread), never as absolute figures.
"""

import time

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE
from test_object_target import whole  # noqa: F401 (the fixture: the tiny model's Whole Object settings)


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def monkey():
    """A subdivided Suzanne (about 16k triangles) with its UVs, selected."""
    bpy.ops.object.select_all(action="DESELECT")
    bpy.ops.mesh.primitive_monkey_add(location=(0.0, 0.0, 1.0))
    obj = bpy.context.active_object
    obj.modifiers.new("Subdivision", "SUBSURF").levels = 2
    return obj


def _captured(settings):
    """The plan of a Whole Object run of 4 views, 512² (main thread), and the seconds it took."""
    settings.object_views, settings.texture_size = 4, 512
    plan_module, object_target = module("bridge.plan"), module("bridge.object_target")
    start = time.perf_counter()
    plan = plan_module.prepare(bpy.context, object_target.TARGET)
    return plan, time.perf_counter() - start


@pytest.mark.parametrize("method", ["GRID", "SEQUENTIAL"])
def test_the_worker_makes_the_same_views_passes_and_texels_as_the_main_thread_did(whole, monkey, method):
    whole.object_method = method
    object_bake = module("bridge.object_bake")
    plan, _ = _captured(whole)
    captured = plan.target_capture
    assert captured.passes == [] and captured.meshes == [] and captured.cameras is None  # nothing rasterised yet
    request = captured.prepare(plan.request)  # what ObjectJob.work does first, on the worker
    # The previous path, all on the main thread, from the same scene.
    depsgraph = bpy.context.evaluated_depsgraph_get()
    size = (captured.view_width, captured.view_height)  # GRID: the grid's cell
    views = object_bake.auto_views([monkey], depsgraph, 4, *size)
    passes = object_bake.view_passes([view.camera() for view in views], depsgraph, "DEPTH")
    (texels,) = object_bake.mesh_texels([monkey], depsgraph, 512)
    assert captured.view_recipes == [view.recipe() for view in views]
    for new, old in zip(captured.passes, passes, strict=True):
        np.testing.assert_array_equal(new.depth, old.depth)
        np.testing.assert_array_equal(new.control_image, old.control_image)
    (mesh,) = captured.meshes
    for field in ("index", "position", "normal"):
        np.testing.assert_array_equal(getattr(mesh.texels[0], field), getattr(texels.texels[0], field))
    grid = module("geometry.grid")
    if method == "GRID":  # the first grid generation's views
        group = captured.grids.groups[0]
        expected = grid.tile([passes[index].control_image for index in group], layout=captured.grids.shape(0))
    else:
        expected = passes[0].control_image
    np.testing.assert_array_equal(request.control_image, expected)
    # and the bake of the same views is the same texture
    images = [np.random.default_rng(index).random((size[1], size[0], 3), dtype=np.float32) for index in range(4)]
    new_bake = object_bake.bake_mesh(mesh, object_bake.bake_views(captured.passes, images))
    old_bake = object_bake.bake_mesh(texels, object_bake.bake_views(passes, images))
    np.testing.assert_array_equal(new_bake.texture, old_bake.texture)


def test_the_main_thread_does_a_small_share_of_the_capture(whole, monkey):
    _captured(whole)  # warm: first evaluation of the modifier, imports
    main, worker = [], []
    for _ in range(3):
        plan, seconds = _captured(whole)
        main.append(seconds)
        start = time.perf_counter()
        plan.target_capture.prepare(plan.request)
        worker.append(time.perf_counter() - start)
    # Copying the triangles out is a small part of rasterising them (6 ms vs 0.2 s here): a bound any CPU keeps.
    assert min(main) < 0.35 * min(worker), (main, worker)


def test_a_texture_packed_from_the_workers_png_has_the_pixels_of_the_old_path():
    pixels, results = module("bridge.pixels"), module("bridge.results")
    rng = np.random.default_rng(3)
    texture = rng.random((256, 256, 4), dtype=np.float32) * 1.2 - 0.1  # out of range values are clamped
    steps = np.arange(256, dtype=np.float32) / 255.0
    texture[0, :, 0] = steps  # every byte value exactly, and just either side of each rounding edge
    texture[1, :, 1] = steps + 0.5 / 255.0 - 1e-6
    texture[2, :, 2] = np.minimum(steps + 0.5 / 255.0, 1.0)
    changes = results.Changes()
    old = results.create_result_image(changes, texture, {"seed": 1}, name="old")
    new = results.create_result_image(changes, texture, {"seed": 1}, name="new", png=pixels.encode_png(texture))
    assert new.packed_file is not None and tuple(new.size) == (256, 256) and not new.is_float
    assert new.colorspace_settings.name == old.colorspace_settings.name == "sRGB"
    np.testing.assert_array_equal(pixels.read_pixels(new), pixels.read_pixels(old))
    rgb = texture[..., :3]
    np.testing.assert_array_equal(pixels.read_pixels(pixels.new_packed_png_image("rgb", pixels.encode_png(rgb))),
                                  pixels.read_pixels(pixels.new_display_image("rgb old", rgb)))
    changes.rollback()
    assert "old" not in bpy.data.images and "new" not in bpy.data.images


def test_packing_the_workers_png_takes_the_main_thread_a_fraction_of_encoding_there():
    pixels, results = module("bridge.pixels"), module("bridge.results")
    texture = np.random.default_rng(0).random((1024, 1024, 4), dtype=np.float32)
    png = pixels.encode_png(texture)
    old, new = [], []
    for _ in range(3):
        changes = results.Changes()
        start = time.perf_counter()
        results.create_result_image(changes, texture, {"seed": 1}, name="old")
        old.append(time.perf_counter() - start)
        start = time.perf_counter()
        results.create_result_image(changes, texture, {"seed": 1}, name="new", png=png)
        new.append(time.perf_counter() - start)
        changes.rollback()
    assert min(new) < 0.25 * min(old), (new, old)
