"""``bpy.ops.latent_textures.generate()`` end to end in background mode, with a tiny offline model."""

import os
import sys

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def tiny(settings, tiny_sd_model):
    """Settings for a fast, fixed-seed generation with the tiny model."""
    settings.model = str(tiny_sd_model)
    settings.prompt = "rusty metal plate"
    settings.width = settings.height = 64
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 1234
    return settings


def active_cube():
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    return cube


RECIPE_KEYS = {"prompt", "negative_prompt", "model", "mode", "seed", "steps", "scheduler", "guidance_scale",
               "strength", "width", "height", "seamless", "target", "version"}


def test_txt2img_to_image_target(tiny):
    tiny.target = "IMAGE"
    materials_before = datablock_counts()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    image = tiny.result_image
    assert image is not None and tuple(image.size) == (64, 64)
    assert image.packed_file is not None
    recipe = image["latent_textures"].to_dict()
    assert RECIPE_KEYS <= set(recipe)
    assert recipe["seed"] == 1234 and recipe["target"] == "IMAGE" and recipe["mode"] == "TXT2IMG"
    assert tiny.seed == 1234
    after = datablock_counts()
    assert after["images"] == materials_before["images"] + 1
    assert {k: v for k, v in after.items() if k != "images"} == \
        {k: v for k, v in materials_before.items() if k != "images"}


def test_result_pixels_are_exactly_the_engines(tiny):
    """The image on the object holds the engine's pixels (within 8-bit quantisation), right way up."""
    tiny.target = "IMAGE"
    engine = module("engine")
    request = engine.GenerationRequest(prompt=tiny.prompt, model=tiny.model, width=64, height=64, steps=2,
                                       seed=1234, guidance_scale=tiny.guidance_scale, scheduler=tiny.scheduler)
    expected = engine.get_engine(engine.EngineOptions(device="CPU")).generate(request).image
    bpy.ops.latent_textures.generate()
    got = module("bridge.pixels").read_pixels(tiny.result_image)
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6


def test_random_seed_is_written_back(tiny):
    tiny.target = "IMAGE"
    tiny.use_random_seed = True
    tiny.seed = 0
    bpy.ops.latent_textures.generate()
    assert tiny.result_image["latent_textures"]["seed"] == tiny.seed


def test_same_seed_identical_pixels(tiny):
    tiny.target = "IMAGE"
    bpy.ops.latent_textures.generate()
    first = np.array(tiny.result_image.pixels[:])
    bpy.ops.latent_textures.generate()
    second = np.array(tiny.result_image.pixels[:])
    np.testing.assert_array_equal(first, second)


def test_material_target_keeps_existing_nodes(tiny):
    cube = active_cube()
    material = cube.active_material
    tree = material.node_tree
    checker = tree.nodes.new("ShaderNodeTexChecker")
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    tree.links.new(checker.outputs["Color"], bsdf.inputs["Base Color"])
    nodes_before = {n.name for n in tree.nodes}

    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert nodes_before < {n.name for n in tree.nodes}  # nothing removed, one added
    link = bsdf.inputs["Base Color"].links[0]
    assert link.from_node.type == "TEX_IMAGE" and link.from_node.image == tiny.result_image
    assert checker.name in tree.nodes  # the old Base Color source stays, to plug back


def test_material_target_creates_material_when_none(tiny):
    cube = active_cube()
    cube.data.materials.clear()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    material = cube.active_material
    assert material is not None
    texture = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE")
    assert texture.image == tiny.result_image


def test_image_survives_save_and_reload(tiny, tmp_path):
    active_cube()
    bpy.ops.latent_textures.generate()
    name = tiny.result_image.name
    pixels_before = np.array(tiny.result_image.pixels[:])
    path = str(tmp_path / "saved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    image = bpy.data.images[name]
    assert bpy.context.scene.latent_textures.result_image == image
    assert image["latent_textures"]["prompt"] == "rusty metal plate"
    np.testing.assert_allclose(np.array(image.pixels[:]), pixels_before, atol=1e-6)


# -- img2img sources -----------------------------------------------------------

def test_img2img_from_image_source(tiny):
    tiny.target = "IMAGE"
    tiny.mode = "IMG2IMG"
    tiny.source = "IMAGE"
    source = bpy.data.images.new("source", 100, 60, float_buffer=True)  # any size, float, linear
    tiny.source_image = source
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    recipe = tiny.result_image["latent_textures"]
    assert recipe["mode"] == "IMG2IMG" and recipe["strength"] == pytest.approx(0.6)


def test_img2img_from_camera(tiny):
    tiny.target = "IMAGE"
    tiny.mode = "IMG2IMG"
    tiny.source = "CAMERA"
    resolution = (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y)
    engine = bpy.context.scene.render.engine
    images_before = len([i for i in bpy.data.images if i.name != "Render Result"])
    renders = []

    def count_render(scene, *args):
        renders.append(scene.name)

    bpy.app.handlers.render_pre.append(count_render)
    try:
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    finally:
        bpy.app.handlers.render_pre.remove(count_render)
    assert renders == [bpy.context.scene.name]
    # The render's settings are restored; only the result is new (Render Result aside).
    assert (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y) == resolution
    assert bpy.context.scene.render.engine == engine
    assert len([i for i in bpy.data.images if i.name != "Render Result"]) == images_before + 1


def test_img2img_from_viewport_falls_back_to_camera_headless(tiny):
    tiny.target = "IMAGE"
    tiny.mode = "IMG2IMG"
    tiny.source = "VIEWPORT"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert tiny.result_image["latent_textures"]["mode"] == "IMG2IMG"


def test_camera_capture_is_display_referred_and_upright():
    """A red object in the top half of the frame lands in the top rows of the captured array."""
    capture = module("bridge.capture")
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "SINGLE"
    scene.display.shading.single_color = (1.0, 0.0, 0.0)
    scene.view_settings.view_transform = "Standard"
    for obj in list(bpy.data.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    camera = scene.camera
    camera.location = (0, 0, 10)
    camera.rotation_euler = (0, 0, 0)
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 2.0
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0, 0.5, 0))  # top half, centred
    array = capture.capture_camera(scene, 64, 64)
    assert array.shape == (64, 64, 3)
    red = array[..., 0] > 0.9
    assert red[:32].sum() > 200 and red[32:].sum() == 0
    np.testing.assert_allclose(array[16, 32], [1.0, 0.0, 0.0], atol=2 / 255)


# -- projection ----------------------------------------------------------------

def plane_filling_camera(camera_type):
    scene = bpy.context.scene
    for obj in list(bpy.data.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_plane_add(size=2.0, location=(0, 0, 0))
    plane = bpy.context.active_object
    camera = scene.camera
    camera.location = (0, 0, 4)
    camera.rotation_euler = (0, 0, 0)
    if camera_type == "ORTHO":
        camera.data.type = "ORTHO"
        camera.data.ortho_scale = 2.0
    else:
        camera.data.type = "PERSP"
        camera.data.sensor_fit = "AUTO"
        camera.data.angle = 2 * np.arctan(1 / 4)
    return plane


@pytest.mark.parametrize("camera_type", ["ORTHO", "PERSP"])
def test_project_plane_filling_view_maps_to_unit_square(tiny, camera_type):
    plane = plane_filling_camera(camera_type)
    tiny.target = "PROJECT"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    projection = module("bridge.projection")
    layer = plane.data.uv_layers[projection.PROJECTION_UV_NAME]
    uvs = np.empty(len(plane.data.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uvs)
    uvs = uvs.reshape(-1, 2)
    loop_vertices = [loop.vertex_index for loop in plane.data.loops]
    for uv, vertex_index in zip(uvs, loop_vertices):
        world = plane.matrix_world @ plane.data.vertices[vertex_index].co
        expected = ((world.x + 1) / 2, (world.y + 1) / 2)
        np.testing.assert_allclose(uv, expected, atol=1e-5)
    material = plane.active_material
    texture = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE")
    uv_node = texture.inputs["Vector"].links[0].from_node
    assert uv_node.type == "UVMAP" and uv_node.uv_map == projection.PROJECTION_UV_NAME


def test_projection_render_reproduces_the_generated_image(tiny):
    """A flat-lit camera render of the projected plane shows the generated image."""
    plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    bpy.ops.latent_textures.generate()
    generated = module("bridge.pixels").read_pixels(tiny.result_image)[..., :3]
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    material = bpy.data.objects["Plane"].active_material
    tree = material.node_tree
    emission = tree.nodes.new("ShaderNodeEmission")
    texture = next(n for n in tree.nodes if n.type == "TEX_IMAGE")
    tree.links.new(texture.outputs["Color"], emission.inputs["Color"])
    output = next(n for n in tree.nodes if n.type == "OUTPUT_MATERIAL")
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    rendered = module("bridge.capture").capture_camera(scene, 64, 64)
    # Sub-pixel sampling differs a little from texel centres: compare the mean error.
    assert np.abs(rendered - generated).mean() < 0.03


def test_project_uses_deformed_positions(tiny):
    """Modifiers that keep the topology (armature, displace) are projected where they render."""
    plane = plane_filling_camera("ORTHO")
    plane.scale = (0.5, 0.5, 1.0)
    bpy.context.view_layer.update()
    modifier = plane.modifiers.new("shift", "DISPLACE")
    modifier.direction = "X"
    modifier.mid_level = 0.0
    modifier.strength = 0.5  # no texture: every vertex moves (1 - mid_level) * strength = 0.5 in local X
    tiny.target = "PROJECT"
    bpy.ops.latent_textures.generate()
    layer = plane.data.uv_layers[module("bridge.projection").PROJECTION_UV_NAME]
    uvs = np.empty(len(plane.data.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uvs)
    u = uvs.reshape(-1, 2)[:, 0]
    # undeformed: u in [0.25, 0.75]; 0.5 local = 0.25 world units = 0.125 in u -> [0.375, 0.875]
    np.testing.assert_allclose(sorted(set(np.round(u, 4))), [0.375, 0.875], atol=1e-4)


# -- errors leave no trace ---------------------------------------------------------

def _assert_error_leaves_no_trace(match, job_left_running=None):
    before = datablock_counts()
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.latent_textures.generate()
    assert datablock_counts() == before
    assert module("bridge.job").current_job() is job_left_running


def test_material_target_without_active_mesh(tiny):
    bpy.context.view_layer.objects.active = bpy.data.objects["Camera"]
    _assert_error_leaves_no_trace("active object is not a mesh")


def test_project_without_selection(tiny):
    tiny.target = "PROJECT"
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    _assert_error_leaves_no_trace("no mesh object is selected")


def test_project_without_camera(tiny):
    tiny.target = "PROJECT"
    active_cube()
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    _assert_error_leaves_no_trace("no camera")


def test_project_shared_mesh_gets_one_mesh_per_object(tiny):
    """A projection is per object: instances sharing a mesh get their own copies, with their own UVs."""
    tiny.target = "PROJECT"
    cube = active_cube()
    twin = cube.copy()
    twin.location.x += 1.5
    bpy.context.collection.objects.link(twin)
    twin.select_set(True)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    assert cube.data != twin.data
    name = module("bridge.projection").PROJECTION_UV_NAME
    cube_uv = np.array([d.uv[:] for d in cube.data.uv_layers[name].data])
    twin_uv = np.array([d.uv[:] for d in twin.data.uv_layers[name].data])
    assert twin_uv[:, 0].mean() > cube_uv[:, 0].mean() + 0.05


def test_image_source_missing(tiny):
    tiny.mode = "IMG2IMG"
    tiny.source = "IMAGE"
    active_cube()
    _assert_error_leaves_no_trace("no source image")


def test_size_not_multiple_of_eight(tiny):
    tiny.width = 100
    active_cube()
    _assert_error_leaves_no_trace("width")


def test_bad_model_path(tiny, tmp_path):
    tiny.model = str(tmp_path / "no-such-model")
    active_cube()
    _assert_error_leaves_no_trace("no-such-model")


def test_corrupt_weights(tiny, tiny_sd_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_model, broken)
    for weights in broken.glob("unet/*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    tiny.model = str(broken)
    active_cube()
    _assert_error_leaves_no_trace(".")


def test_second_generation_while_one_runs_is_refused(tiny):
    targets = module("bridge.targets")
    active_cube()
    plan = targets.prepare(bpy.context)
    run = targets.start(plan)
    try:
        _assert_error_leaves_no_trace("already running", job_left_running=run.job)
    finally:
        run.abandon()


# -- the modal path's queue and timer logic, driven directly --------------------------

def _drive(run, context, timeout=120.0):
    import time

    deadline = time.monotonic() + timeout
    outcomes = []
    while time.monotonic() < deadline:
        outcome = run.tick(context)
        if outcome is not None:
            return outcome
        time.sleep(0.01)
    raise AssertionError("the worker never finished")


def test_modal_path_worker_thread_and_ticks(tiny):
    targets = module("bridge.targets")
    active_cube()
    run = targets.start(targets.prepare(bpy.context))
    run.start()
    assert module("bridge.job").current_job() is run.job
    assert _drive(run, bpy.context) == "FINISHED"
    assert run.job.step == run.job.total == 2
    assert module("bridge.job").current_job() is None
    assert run.image is not None and bpy.context.scene.latent_textures.result_image == run.image


def test_modal_path_cancel_leaves_no_trace(tiny):
    targets = module("bridge.targets")
    tiny.steps = 50
    active_cube()
    before = datablock_counts()
    run = targets.start(targets.prepare(bpy.context))
    run.job.cancel()  # as ESC or latent_textures.cancel do, before the first step ends
    run.start()
    assert _drive(run, bpy.context) == "CANCELLED"
    assert ("WARNING", "Generation cancelled: nothing was changed") in run.reports
    assert datablock_counts() == before


def test_cancel_operator_sets_the_running_jobs_flag(tiny):
    targets = module("bridge.targets")
    active_cube()
    run = targets.start(targets.prepare(bpy.context))
    assert bpy.ops.latent_textures.cancel() == {"FINISHED"}
    assert run.job.cancel_event.is_set()
    run.abandon()
    assert not bpy.ops.latent_textures.cancel.poll()


def test_free_model(tiny):
    tiny.target = "IMAGE"
    bpy.ops.latent_textures.generate()
    engine = module("engine").loaded_engine()
    assert engine is not None and engine.loaded_model() is not None
    assert bpy.ops.latent_textures.free_model() == {"FINISHED"}
    assert engine.loaded_model() is None


def test_img2img_with_too_few_effective_steps_fails_before_any_render(tiny):
    """steps x strength < 1 denoises nothing: refused up front, before the camera is rendered."""
    tiny.mode = "IMG2IMG"
    tiny.source = "CAMERA"
    tiny.steps = 1
    tiny.strength = 0.5
    active_cube()
    renders = []

    def count_render(scene, *args):
        renders.append(scene.name)

    bpy.app.handlers.render_pre.append(count_render)
    try:
        _assert_error_leaves_no_trace("strength")
    finally:
        bpy.app.handlers.render_pre.remove(count_render)
    assert renders == []


def test_target_deleted_or_renamed_during_the_run_keeps_the_image(tiny):
    """Objects deleted while the engine ran are reported; renamed ones are still found; the image is kept."""
    targets = module("bridge.targets")
    tiny.target = "PROJECT"
    cube = active_cube()
    bpy.ops.mesh.primitive_plane_add(location=(3, 0, 0))
    cube.select_set(True)
    run = targets.start(targets.prepare(bpy.context))
    run.run_here()
    bpy.data.objects.remove(bpy.data.objects["Plane"])
    cube.name = "Renamed Cube"
    assert run.tick(bpy.context) == "FINISHED"
    assert run.image is not None and tiny.result_image == run.image
    assert any(level == "WARNING" and "'Plane' was deleted" in text for level, text in run.reports)
    assert module("bridge.projection").PROJECTION_UV_NAME in cube.data.uv_layers
    texture = next(n for n in cube.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    assert texture.image == run.image


def test_material_target_deleted_during_the_run_keeps_the_image(tiny):
    targets = module("bridge.targets")
    active_cube()
    run = targets.start(targets.prepare(bpy.context))
    run.run_here()
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    images = len(bpy.data.images)
    assert run.tick(bpy.context) == "FINISHED"
    assert len(bpy.data.images) == images + 1 and tiny.result_image == run.image
    assert any(level == "WARNING" and "'Cube' was deleted" in text for level, text in run.reports)


def test_missing_engine_packages_say_how_to_install_them(tiny, monkeypatch):
    """Peers' first complaint: ModuleNotFoundError. Here: the fix, and nothing created."""
    monkeypatch.setitem(sys.modules, "diffusers", None)  # what find_spec sees for an absent package
    active_cube()
    _assert_error_leaves_no_trace(r"diffusers missing\): open Preferences > Add-ons > Latent Textures")


def test_image_source_whose_file_is_missing(tiny, tmp_path):
    tiny.mode = "IMG2IMG"
    tiny.source = "IMAGE"
    path = tmp_path / "gone.png"
    image = bpy.data.images.new("gone", 8, 8)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    tiny.source_image = bpy.data.images.load(str(path))
    path.unlink()
    active_cube()
    _assert_error_leaves_no_trace("its file .* is missing")


def test_settings_an_lcm_model_ignores_are_reported(tiny, tiny_lcm_model, capfd):
    """Generate on an LCM model with a negative prompt: an INFO report says it had no effect."""
    tiny.model = str(tiny_lcm_model)
    tiny.negative_prompt = "blurry"
    tiny.guidance_scale = 1.0
    tiny.scheduler = "LCM"
    tiny.target = "IMAGE"
    capfd.readouterr()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    out = capfd.readouterr().out
    assert "Info: The negative prompt has no effect: this model runs an LCM pipeline" in out
    tiny.negative_prompt = ""
    bpy.ops.latent_textures.generate()
    assert "no effect" not in capfd.readouterr().out
