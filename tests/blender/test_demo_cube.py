"""``make demo``'s cube (tools/demo.py) shows what the README claims (issue 23 item 8): six UV islands, so a
Whole Object bake gives every face its own texels, each seen face's from the view facing it.

The demo's scene and views, baked from views painted one flat colour each: a face's colour says which view
its texels came from.
"""

import importlib.util
import math

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, REPO_ROOT


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def demo():
    spec = importlib.util.spec_from_file_location("lt_demo", REPO_ROOT / "tools" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def cell_texels(demo, normal, size):
    """(rows, columns) of the texels well inside the face's UV cell, top row first."""
    column, row = demo.FACE_CELLS[normal]
    low, high = demo.CELL * 0.25, demo.CELL * 0.75
    u = slice(int((column * demo.CELL + low) * size), int((column * demo.CELL + high) * size))
    v0, v1 = int((row * demo.CELL + low) * size), int((row * demo.CELL + high) * size)
    return slice(size - v1, size - v0), u


def test_the_demo_cube_has_six_islands_and_each_face_takes_the_view_facing_it(demo):
    cube = demo.build_demo_scene()
    object_bake = module("bridge.object_bake")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    uv, positions, _ = object_bake.object_triangles(cube, depsgraph)
    assert len(np.unique(module("geometry.uv_tiles").uv_islands(uv, positions))) == 6
    views = object_bake.auto_views([cube], depsgraph, demo.WHOLE_OBJECT_VIEWS, 64, 64)
    passes = object_bake.view_passes([view.camera() for view in views], depsgraph, "DEPTH")
    colours = np.float32([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]])[:len(views)]
    images = [np.broadcast_to(colour, (64, 64, 3)).copy() for colour in colours]
    size = 256
    (baked,) = object_bake.bake_objects([cube], depsgraph, passes, images, size)
    assert baked.shared_texels == 0  # no texel on two faces: each face has texels of its own
    rotation = np.array(cube.matrix_world)[:3, :3]
    sources = []
    for normal in [n for n in demo.FACE_CELLS if n != (0, 0, -1)]:  # the bottom stands on the ground: unseen
        world_normal = rotation @ np.float64(normal)
        centre = np.array(cube.matrix_world)[:3, 3] + world_normal
        facing = [world_normal @ (np.array(view.camera().world_matrix)[:3, 3] - centre)
                  / np.linalg.norm(np.array(view.camera().world_matrix)[:3, 3] - centre) for view in views]
        rows, columns = cell_texels(demo, normal, size)
        mean = baked.texture[rows, columns, :3].reshape(-1, 3).mean(axis=0)
        nearest = int(np.argmin(np.linalg.norm(colours - mean, axis=1)))
        assert nearest == int(np.argmax(facing)), (normal, mean, facing)
        assert max(facing) > math.cos(math.radians(50))
        sources.append(nearest)
    assert len(set(sources)) == 5  # four sides and the top, five different views
