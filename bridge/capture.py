"""img2img sources: what the model starts from, as the artist sees it.

Every capture returns a (height, width, 3) float32 display-referred sRGB
array, top row first, and leaves no datablock or setting changed behind it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import bpy
import numpy as np

from . import pixels

# Engines that need a GPU to be quick; headless they are swapped for Cycles on the CPU.
_SLOW_HEADLESS_ENGINES = {"BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"}
# capture_quality FAST: the render blocks Blender's UI (bpy.ops.render.render is synchronous), so bound it.
FAST_SAMPLES = 16
FAST_TIME_LIMIT_SECONDS = 5.0


@contextlib.contextmanager
def _restored(owner, *names: str):
    saved = {name: getattr(owner, name) for name in names}
    try:
        yield owner
    finally:
        for name, value in saved.items():
            setattr(owner, name, value)


def capture_camera(scene: bpy.types.Scene, width: int, height: int, quality: str = "FAST") -> np.ndarray:
    """Render the scene camera at width x height with the scene's view transform applied.

    ``quality`` FAST caps the samples (denoised) and Cycles' render time;
    SCENE renders with the scene's own settings. Every setting is restored.
    """
    if scene.camera is None:
        raise ValueError("The scene has no camera: add one (or pick Source: Image)")
    render = scene.render
    with contextlib.ExitStack() as stack:
        stack.enter_context(_restored(render, "resolution_x", "resolution_y", "resolution_percentage",
                                      "engine", "use_border", "filepath"))
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.use_border = False
        if bpy.app.background and render.engine in _SLOW_HEADLESS_ENGINES:
            render.engine = "CYCLES"
        if render.engine == "CYCLES":
            cycles = scene.cycles
            stack.enter_context(_restored(cycles, "device", "samples", "use_denoising", "time_limit"))
            if bpy.app.background:
                cycles.device = "CPU"
            if quality == "FAST":
                cycles.samples = min(cycles.samples, FAST_SAMPLES)
                cycles.use_denoising = True
                limit = cycles.time_limit
                cycles.time_limit = FAST_TIME_LIMIT_SECONDS if limit <= 0 else min(limit, FAST_TIME_LIMIT_SECONDS)
        elif render.engine in _SLOW_HEADLESS_ENGINES and quality == "FAST":
            stack.enter_context(_restored(scene.eevee, "taa_render_samples"))
            scene.eevee.taa_render_samples = min(scene.eevee.taa_render_samples, FAST_SAMPLES)
        bpy.ops.render.render(scene=scene.name)
        return _render_result_pixels(scene)


def viewport_area(context: bpy.types.Context) -> bpy.types.Area | None:
    """The 3D viewport Source Viewport captures: the first one of the context's screen."""
    screen = getattr(context, "screen", None)
    return next((a for a in screen.areas if a.type == "VIEW_3D"), None) if screen is not None else None


def viewport_projection_problem(area: bpy.types.Area, scene: bpy.types.Scene) -> str | None:
    """Why an image of this viewport cannot be projected from the scene camera, or None when it can.

    The viewport render frames the image exactly like the camera only while
    the viewport looks through the scene camera; any other view would be
    projected misaligned, so it is refused rather than silently wrong.
    """
    space = area.spaces.active
    camera = space.camera if space.use_local_camera else scene.camera
    if space.region_3d.view_perspective == "CAMERA" and camera == scene.camera:
        return None
    return ("Source Viewport with Target Project from Camera: the viewport does not look through the scene camera, "
            "so the image would not line up. Look through the camera (View > Cameras > Active Camera) or pick "
            "Source: Camera Render")


def capture_viewport(context: bpy.types.Context, width: int, height: int) -> np.ndarray:
    """The active 3D viewport as drawn (viewport render) at width x height."""
    area = viewport_area(context)
    if area is None:
        raise ValueError("No 3D viewport is open to capture")
    scene = context.scene
    render = scene.render
    with _restored(render, "resolution_x", "resolution_y", "resolution_percentage"):
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        region = next(r for r in area.regions if r.type == "WINDOW")
        with context.temp_override(area=area, region=region):
            bpy.ops.render.opengl(write_still=False, view_context=True)
        return _render_result_pixels(scene)


def _render_result_pixels(scene: bpy.types.Scene) -> np.ndarray:
    # Headless, "Render Result" reports size (0, 0): go through a file, which
    # also applies the scene's view transform exactly as the artist sees it.
    result = bpy.data.images.get("Render Result")
    if result is None:
        raise RuntimeError("Blender produced no render result")
    with tempfile.TemporaryDirectory(prefix="latent_textures_") as folder:
        path = os.path.join(folder, "render.png")
        pixels.save_display_png(result, path, scene=scene)
        return pixels.load_png_pixels(path)[..., :3]


def capture_image(image: bpy.types.Image | None, width: int, height: int) -> np.ndarray:
    """An Image datablock as displayed, stretched to width x height (texture space kept, antialiased)."""
    if image is None:
        raise ValueError("Source is Image but no source image is set: pick one in the panel")
    file_missing = image.source == "FILE" and not os.path.exists(bpy.path.abspath(image.filepath))
    if file_missing and image.packed_file is None and not image.has_data:
        raise ValueError(f"Source image '{image.name}' has no pixels: its file '{image.filepath}' is missing")
    display = pixels.read_display_pixels(image)[..., :3]
    return pixels.resize(display, height, width)
