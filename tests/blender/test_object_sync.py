"""Whole Object ``object_method = 'SYNC'`` through ``bpy.ops.latent_textures.generate()`` (issue 29): every view
denoised together through one latent texture per mesh, then baked like GRID's views.

Tiny offline models; 64 px views, 256 px textures, 2 steps.
"""

import bpy
import numpy as np
import pytest

from harness import datablock_counts
from test_object_target import module, select, whole  # noqa: F401 (the Whole Object fixture and helpers)


@pytest.fixture
def synced(whole):
    whole.object_method = "SYNC"
    whole.scheduler = "DPM_SOLVER_MULTISTEP"
    whole.keep_view_images = True
    return whole


def test_sync_bakes_every_mesh_and_records_its_parameters_and_reproduces(synced):
    cube = bpy.data.objects["Cube"]
    bpy.ops.mesh.primitive_uv_sphere_add(segments=12, ring_count=6, radius=0.8, location=(2.5, 0, 0))
    sphere = bpy.context.active_object
    select(cube, sphere)
    assert synced.sync_fraction == pytest.approx(0.8)
    synced.sync_fraction = 1.0
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    textures = [image for image in bpy.data.images
                if "latent_textures" in image and image["latent_textures"].get("mesh")]
    assert sorted(image["latent_textures"]["mesh"] for image in textures) == sorted([cube.data.name,
                                                                                     sphere.data.name])
    recipe = synced.result_image["latent_textures"].to_dict()
    assert recipe["object_method"] == "SYNC" and len(recipe["views"]) == 3
    assert recipe["sync"]["fraction"] == 1.0 and recipe["sync"]["attention"] == "NONE"
    assert recipe["sync"]["weight_exponent"] == 1.0 and recipe["sync"]["latent_texture_size"] >= 32
    pixels = module("bridge.pixels").read_pixels(synced.result_image)
    assert pixels[..., :3].std() > 0.01
    name = synced.result_image.name
    for index in (1, 2, 3):
        assert tuple(bpy.data.images[f"{name} view {index}"].size) == (64, 64)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(synced.result_image), pixels)


def test_sync_with_cross_view_attention_records_it_changes_the_views_and_reproduces(synced):
    select(bpy.data.objects["Cube"])
    assert synced.sync_attention == "NONE"  # measured not to pay with the tiny models (docs/whole-object.md)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    name = synced.result_image.name
    plain = module("bridge.pixels").read_pixels(bpy.data.images[f"{name} view 2"])
    synced.sync_attention = "NEIGHBOURS_REFERENCE"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    recipe = synced.result_image["latent_textures"].to_dict()
    assert recipe["object_method"] == "SYNC" and recipe["sync"]["attention"] == "NEIGHBOURS_REFERENCE"
    name = synced.result_image.name
    attending = module("bridge.pixels").read_pixels(bpy.data.images[f"{name} view 2"])
    assert not np.array_equal(attending, plain)
    pixels = module("bridge.pixels").read_pixels(synced.result_image)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(synced.result_image), pixels)


@pytest.mark.parametrize("scheduler", ["PNDM", "EULER_ANCESTRAL"])
def test_a_scheduler_sync_cannot_step_is_refused_by_name_and_nothing_changes(synced, scheduler):
    synced.scheduler = scheduler
    select(bpy.data.objects["Cube"])
    problem, _ = module("bridge.object_target").work_estimate(synced)
    assert scheduler in problem  # the panel says so before clicking
    before = datablock_counts()
    with pytest.raises(RuntimeError, match=f"scheduler {scheduler}"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and synced.result_image is None


def test_esc_after_the_first_synchronised_step_stops_the_run_and_leaves_nothing(synced):
    synced.steps = 6
    select(bpy.data.objects["Cube"])
    before = datablock_counts()
    run = module("bridge.object_target").ObjectRun(module("bridge.targets").prepare(bpy.context))
    seen = []

    def on_step(event):
        seen.append(event.step)
        run.job.cancel()  # as ESC does, from the first step on

    with module("bridge.job").progress_listener(on_step):
        run.run_here()
    assert run.tick(bpy.context) == "CANCELLED"
    assert seen == [1]
    assert datablock_counts() == before and synced.result_image is None


def test_views_that_do_not_fit_the_memory_are_refused_with_the_count_that_fits_and_nothing_changes(
        synced, monkeypatch):
    """A real budget, not a mock: the engine plans with LATENT_TEXTURES_MEMORY_BUDGET_MB (engine/devices.py)."""
    select(bpy.data.objects["Cube"])
    monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", "1")
    before = datablock_counts()
    with pytest.raises(RuntimeError, match=r"Sync with 3 views .* at most 0 views fit"):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before and synced.result_image is None


def test_a_sync_run_in_view_groups_names_the_step_then_the_group(synced):
    """What the status bar and panel read while SYNC runs its views in groups (the engine's events carry the group
    as part/parts: tests/engine/test_view_groups.py)."""
    select(bpy.data.objects["Cube"])
    job = module("bridge.object_target").ObjectJob(module("bridge.targets").prepare(bpy.context), previews=False)
    engine = module("engine")
    job.events.put(module("bridge.job").JobEvent("progress", engine.ProgressEvent(1, 2, part=2, parts=3)))
    job.drain()
    assert job.describe() == "Step 1/2 · view group 2/3"
    job.events.put(module("bridge.job").JobEvent("progress", engine.ProgressEvent(2, 2)))
    job.drain()
    assert job.describe() == "Step 2/2"  # one group: the plain line


def test_use_this_images_settings_restores_the_whole_object_and_sync_settings(synced):
    select(bpy.data.objects["Cube"])
    synced.sync_fraction, synced.sync_attention, synced.texture_size = 0.5, "NEIGHBOURS", 512
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    made = synced.result_image
    pixels = module("bridge.pixels").read_pixels(made)
    synced.object_method, synced.sync_fraction, synced.sync_attention = "GRID", 0.8, "NONE"
    synced.texture_size, synced.color_match, synced.target = 1024, "REINHARD", "IMAGE"
    assert bpy.ops.latent_textures.use_image_settings(image=made.name) == {"FINISHED"}
    assert (synced.target, synced.object_method, synced.sync_attention) == ("OBJECT", "SYNC", "NEIGHBOURS")
    assert synced.sync_fraction == pytest.approx(0.5) and synced.texture_size == 512
    assert synced.color_match == "NONE"  # SYNC records NONE: it agrees by construction
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}  # ... so generating again makes the same texture
    np.testing.assert_array_equal(module("bridge.pixels").read_pixels(synced.result_image), pixels)
