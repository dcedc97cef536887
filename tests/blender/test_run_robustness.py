"""A run while the artist keeps working: projection timing, freezes, errors, memory (issue 12, items 1, 2, 11-14).

The modal path is driven the way the operator's timer drives it: the worker
thread started, the scene changed meanwhile, ``tick`` called until it ends.
"""

import sys
import threading
import time

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts, disable_addon, enable_addon
from test_generate import _drive, active_cube, plane_filling_camera, tiny  # noqa: F401 - the fixture is used by name

# The bound on any wait on Blender's main thread.
MAX_MAIN_THREAD_WAIT = 0.1


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def started_run(context=None):
    targets = module("bridge.targets")
    run = targets.start(targets.prepare(context or bpy.context))
    run.start()
    return run


def projection_uvs(obj):
    layer = obj.data.uv_layers[module("bridge.projection").PROJECTION_UV_NAME]
    uvs = np.empty(len(obj.data.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uvs)
    return uvs.reshape(-1, 2)


def expected_plane_uvs(plane):
    """The plane fills the start camera's view: world (x, y) in [-1, 1] maps to ((x+1)/2, (y+1)/2)."""
    points = [plane.matrix_world @ plane.data.vertices[loop.vertex_index].co for loop in plane.data.loops]
    return np.array([((p.x + 1) / 2, (p.y + 1) / 2) for p in points])


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


# -- item 1: the projection is the camera's at the start --------------------------------------------------

def test_camera_moved_during_the_run_projects_from_where_it_was(tiny):
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    run = started_run()
    bpy.context.scene.camera.location = (5.0, 3.0, 4.0)  # the artist keeps working
    assert _drive(run, bpy.context) == "FINISHED"
    np.testing.assert_allclose(projection_uvs(plane), expected_plane_uvs(plane), atol=1e-5)


def test_camera_deleted_during_the_run_still_projects(tiny):
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    run = started_run()
    bpy.data.objects.remove(bpy.context.scene.camera)
    assert _drive(run, bpy.context) == "FINISHED", run.reports
    np.testing.assert_allclose(projection_uvs(plane), expected_plane_uvs(plane), atol=1e-5)


def test_frame_changed_during_the_run_projects_from_the_start_frame(tiny):
    plane = plane_filling_camera("ORTHO")
    scene = bpy.context.scene
    camera = scene.camera
    scene.frame_set(1)
    camera.keyframe_insert("location", frame=1)
    camera.location.x = 4.0
    camera.keyframe_insert("location", frame=20)
    scene.frame_set(1)
    tiny.target = "PROJECT"
    run = started_run()
    scene.frame_set(20)
    assert _drive(run, bpy.context) == "FINISHED"
    np.testing.assert_allclose(projection_uvs(plane), expected_plane_uvs(plane), atol=1e-5)


# -- item 2: Source Viewport + Target Project -----------------------------------------------------------

def test_viewport_image_is_projected_only_when_the_viewport_looks_through_the_camera():
    """The rule the UI applies (headless there is no viewport render to check it through ``bpy.ops``)."""
    capture = module("bridge.capture")
    screen = bpy.data.screens["Layout"]
    area = next(a for a in screen.areas if a.type == "VIEW_3D")
    region = area.spaces.active.region_3d
    scene = bpy.context.scene
    region.view_perspective = "PERSP"
    assert "does not look through the scene camera" in capture.viewport_projection_problem(area, scene)
    region.view_perspective = "CAMERA"
    assert capture.viewport_projection_problem(area, scene) is None
    other = bpy.data.objects.new("Other camera", bpy.data.cameras.new("Other camera"))
    area.spaces.active.use_local_camera = True
    area.spaces.active.camera = other
    assert capture.viewport_projection_problem(area, scene) is not None


def test_viewport_source_headless_projects_the_camera_render_it_used(tiny):
    plane = plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    tiny.mode = "IMG2IMG"
    tiny.source = "VIEWPORT"
    tiny.strength = 1.0
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_allclose(projection_uvs(plane), expected_plane_uvs(plane), atol=1e-5)


# -- item 11: a bounded camera capture ---------------------------------------------------------------------

def _render_settings_seen(tiny):
    scene = bpy.context.scene
    seen = []

    def record(render_scene, *args):
        cycles = render_scene.cycles
        seen.append((cycles.samples, cycles.use_denoising, cycles.time_limit))

    tiny.target = "IMAGE"
    tiny.mode = "IMG2IMG"
    tiny.source = "CAMERA"
    scene.render.engine = "CYCLES"
    scene.cycles.use_denoising = False
    bpy.app.handlers.render_pre.append(record)
    try:
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    finally:
        bpy.app.handlers.render_pre.remove(record)
    return seen


def test_fast_capture_bounds_samples_and_render_time(tiny):
    scene = bpy.context.scene
    scene.cycles.samples = 4096
    scene.cycles.time_limit = 0.0
    assert tiny.capture_quality == "FAST"
    (samples, denoise, limit), = _render_settings_seen(tiny)
    assert samples <= 16 and denoise and 0 < limit <= 5
    assert (scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.time_limit) == (4096, False, 0.0)


def test_scene_capture_quality_renders_with_the_scenes_settings(tiny):
    bpy.context.scene.cycles.samples = 24
    tiny.capture_quality = "SCENE"
    assert _render_settings_seen(tiny) == [(24, False, 0.0)]


# -- item 12: no main-thread wait over 100 ms -----------------------------------------------------------------

def test_free_model_while_a_cancelled_run_holds_the_engine_does_not_wait(tiny):
    tiny.target = "IMAGE"
    tiny.steps = 3
    job_module = module("bridge.job")
    inside_step, release = threading.Event(), threading.Event()

    def hold_the_engine(event):  # the worker, inside the engine's lock, in the middle of a step
        inside_step.set()
        release.wait(3)

    with job_module.progress_listener(hold_the_engine):
        run = started_run()
        assert inside_step.wait(60)
        run.abandon()  # what the operator's cancel() does when Blender tears it down
        started = time.perf_counter()
        result = bpy.ops.latent_textures.free_model()
        elapsed = time.perf_counter() - started
        release.set()
    assert result == {"FINISHED"}
    assert elapsed < MAX_MAIN_THREAD_WAIT
    engine = module("engine").loaded_engine()
    wait_for(lambda: engine.loaded_model() is None and not job_module.busy_workers())


def test_cancelling_a_download_whose_child_ignores_sigterm_returns_at_once(tiny, tmp_path):
    state = module("dependencies.state").STATE
    fake = tmp_path / "fake_hub"
    (fake / "huggingface_hub").mkdir(parents=True)
    (fake / "huggingface_hub" / "__init__.py").write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
        "time.sleep(60)\n")
    path = [str(fake), *[p for p in sys.path if "site-packages" not in p]]
    repo_id = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    job = module("dependencies.download").DownloadJob(sys.executable, path, repo_id, str(tmp_path / "cache"))
    state.downloads[repo_id] = job
    try:
        job.start()
        wait_for(lambda: any("ready" in line for line in job.lines), timeout=20)
        started = time.perf_counter()
        assert bpy.ops.latent_textures.cancel_model_download(repo_id=repo_id) == {"FINISHED"}
        elapsed = time.perf_counter() - started
        job.join(15)  # the child is killed after the grace period, off the main thread
        assert job.result is not None and job.result.cancelled
    finally:
        state.downloads.pop(repo_id, None)
    assert elapsed < MAX_MAIN_THREAD_WAIT


def test_install_from_the_ui_runs_no_nvidia_smi_on_the_main_thread(tiny, tmp_path, monkeypatch):
    """With the facts of the last Refresh, Install plans without running nvidia-smi (it used to run it twice)."""
    runs = tmp_path / "nvidia-smi-runs"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho run >> {runs}\nsleep 1\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{__import__('os').environ['PATH']}")
    state = module("dependencies.state").STATE
    facts = module("dependencies.torch_build").SystemFacts(system="Linux", machine="x86_64")
    monkeypatch.setattr(state, "facts", facts)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    started = time.perf_counter()
    try:  # headless the confirmed install then runs pip in place; it fails at once (no wheels, no index)
        bpy.ops.latent_textures.install_dependencies("INVOKE_DEFAULT", find_links=str(empty), no_index=True)
    except RuntimeError:
        pass
    finally:
        if state.install is not None:
            state.install.join(60)
        state.install = None
    assert not runs.exists(), f"nvidia-smi ran {runs.read_text().count('run')} times"
    assert time.perf_counter() - started < 120


# -- item 13: errors inside tick, disabling the add-on --------------------------------------------------------

def test_an_exception_inside_tick_ends_the_run_cleanly(tiny):
    tiny.target = "IMAGE"
    job_module = module("bridge.job")
    run = started_run()
    ended = []
    run.on_end = lambda: ended.append("timer and status text removed")

    def broken_drain():
        raise RuntimeError("injected")

    run.job.drain = broken_drain
    assert run.tick(bpy.context) == "CANCELLED"
    assert ended == ["timer and status text removed"]
    assert any(level == "ERROR" and "injected" in text for level, text in run.reports)
    assert job_module.current_job() is None and run.job.cancel_event.is_set()
    wait_for(lambda: not job_module.busy_workers())
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}  # Generate is allowed again


def test_disabling_the_addon_during_a_run_cancels_it(tiny):
    tiny.target = "IMAGE"
    tiny.steps = 50
    job_module = module("bridge.job")
    run = started_run()
    ended = []
    run.on_end = lambda: ended.append(True)
    try:
        disable_addon()
        assert run.job.cancel_event.is_set()
        assert ended == [True] and job_module.current_job() is None
    finally:
        if ADDON_MODULE not in bpy.context.preferences.addons:
            enable_addon()
        run.job.cancel()
    wait_for(lambda: not job_module.busy_workers())


# -- item 14: memory and work nobody needs --------------------------------------------------------------------

def test_a_finished_run_drops_its_large_arrays(tiny):
    plane_filling_camera("ORTHO")
    tiny.target = "PROJECT"
    tiny.mode = "IMG2IMG"
    tiny.source = "IMAGE"
    tiny.source_image = bpy.data.images.new("source", 64, 64)
    run = started_run()
    assert run.plan.request.init_image is not None
    assert _drive(run, bpy.context) == "FINISHED"
    assert run.plan.request.init_image is None
    assert run.job.request is None
    assert not run.plan.target_capture.uvs


def test_headless_runs_compute_no_previews(tiny):
    tiny.target = "IMAGE"
    events = []
    with module("bridge.job").progress_listener(events.append):
        assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    steps = [event for event in events if event.stage == "DENOISE"]
    assert len(steps) == tiny.steps
    assert all(event.preview is None for event in steps)
