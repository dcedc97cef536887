"""The request's images for one view of the scene (the Image, Material and Project targets): the inpainting
mask, the img2img source (an Image, the viewport or a camera render) and the control image, read before the
engine runs. Whole Object reads its own views (``object_target``).
"""

from __future__ import annotations

import bpy

from . import capture, geometry, masks, requests
from .plan import Plan


def check(context: bpy.types.Context, settings, plan: Plan) -> None:
    """What is refused before anything is rendered: control without a camera, a bad mask."""
    if settings.control != "NONE" and context.scene.camera is None:
        raise ValueError(f"Control {settings.control.title()} sees the scene through its camera, but the scene "
                         "has no camera: add one (or set Control to None)")
    if settings.mode == "INPAINT":
        # The mask first: a bad mask is refused before a render is spent on the source.
        plan.request.mask_image = _mask(settings, plan)
        requests.validate_settings(plan.request)


def read(context: bpy.types.Context, settings, plan: Plan) -> None:
    """The source image and the control image into the plan's request, which is then checked whole."""
    request = plan.request
    if settings.mode in ("IMG2IMG", "INPAINT"):
        try:
            request.init_image = _capture(context, settings, plan)
        except RuntimeError as error:
            raise ValueError(f"Could not capture the source image: {error}") from error
    if settings.control != "NONE":
        request.control_image = geometry.control_image(
            context.scene, context.evaluated_depsgraph_get(), settings.control, request.width, request.height)
    request.validate()


def _mask(settings, plan: Plan):
    if settings.mask_image is not None:
        plan.mask_name = settings.mask_image.name
        return masks.mask_from_image(settings.mask_image, settings.width, settings.height)
    if settings.source != "IMAGE":
        raise ValueError("Inpaint without a Mask image repaints where the source image is transparent, which needs "
                         "Source: Image; pick a Mask image (white = repaint) for a camera or viewport source")
    return masks.mask_from_alpha(settings.source_image, settings.width, settings.height)


def will_capture_viewport(context: bpy.types.Context) -> bool:
    """Source Viewport renders the viewport only with a UI; headless it is a camera render."""
    return not bpy.app.background and capture.viewport_area(context) is not None


def _capture(context, settings, plan: Plan):
    width, height = settings.width, settings.height
    if settings.source == "IMAGE":
        return capture.capture_image(settings.source_image, width, height)
    if settings.source == "VIEWPORT":
        if will_capture_viewport(context):
            return capture.capture_viewport(context, width, height)
        plan.notes.append("No viewport in background mode: used a camera render as the source instead")
    return capture.capture_camera(context.scene, width, height, settings.capture_quality)
