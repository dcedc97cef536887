"""GRID at the model's own scale (issue 23 item 5) through the real generation: six views at Width x Height
128 are two grid generations of three 72 px cells (216 x 72 each), sharing the seed and prompt.

Tiny offline models (tools/tiny_models.py) with the tiny depth ControlNet; 256 px textures, 2 steps.
"""

import dataclasses

import bpy
import numpy as np

from harness import ADDON_MODULE
from test_object_target import select, whole, wiring  # noqa: F401 (whole: the tiny model's Whole Object settings)


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def test_six_views_are_two_grids_of_three_cells_sharing_the_seed(whole):
    whole.width = whole.height = 128
    whole.object_views = 6
    whole.keep_view_images = True
    cube = bpy.data.objects["Cube"]
    select(cube)
    object_target = module("bridge.object_target")
    run = object_target.ObjectRun(module("bridge.targets").prepare(bpy.context))
    captured, first = run.plan.target_capture, run.plan.request
    assert (first.width, first.height) == (216, 72) and first.control_image.shape[:2] == (72, 216)
    assert run.job.part_label == "Grid"
    parts = []
    with module("bridge.job").progress_listener(lambda event: parts.append((event.part, event.parts))):
        run.run_here()
        assert run.tick(bpy.context) == "FINISHED"
    assert sorted(set(parts)) == [(1, 2), (2, 2)]  # "Grid 1/2", "Grid 2/2"
    image = whole.result_image
    recipe = image["latent_textures"].to_dict()
    assert (recipe["width"], recipe["height"]) == (128, 128)  # the settings, as Use Image Settings reads them
    assert recipe["grid"] == {"cell": [72, 72], "generations": [[1, 2, 3], [4, 5, 6]]}
    assert [(view["width"], view["height"]) for view in recipe["views"]] == [(72, 72)] * 6
    pixels = module("bridge.pixels")
    kept = []
    for index in range(1, 7):
        view = bpy.data.images[f"{image.name} view {index}"]
        assert tuple(view.size) == (72, 72)
        assert tuple(bpy.data.images[f"{image.name} view {index} control"].size) == (72, 72)
        kept.append(pixels.read_pixels(view)[..., :3])
    wiring(cube.active_material)
    # The second grid is the engine's generation of views 4-6's control images at the first grid's seed.
    second = dataclasses.replace(object_target.grid_request(first, captured.grids, captured.passes, 1),
                                 seed=recipe["seed"])
    assert (second.width, second.height) == (216, 72)
    result = module("engine").loaded_engine().generate(second)
    grid = module("geometry.grid")
    for view, again in zip(kept[3:], grid.untile(result.image[..., :3], 3, (1, 3))):
        np.testing.assert_allclose(view, again, atol=2 / 255)
