"""The live preview: one reusable Image updated each step, shown in open Image Editors."""

import bpy
import numpy as np

from . import pixels

PREVIEW_IMAGE_NAME = "Latent Textures Preview"


def show(context, array: np.ndarray) -> bpy.types.Image:
    height, width = array.shape[:2]
    image = bpy.data.images.get(PREVIEW_IMAGE_NAME)
    if image is None:
        image = bpy.data.images.new(PREVIEW_IMAGE_NAME, width=width, height=height, alpha=True)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    pixels.write_pixels(image, array)
    for space in _image_editor_spaces(context):
        if space.image is None or space.image == image:
            space.image = image
    return image


def show_result(context, result: bpy.types.Image) -> None:
    """Swap the preview for the result in the editors that showed it."""
    preview = bpy.data.images.get(PREVIEW_IMAGE_NAME)
    for space in _image_editor_spaces(context):
        if space.image is None or space.image == preview:
            space.image = result


def remove(context) -> None:
    image = bpy.data.images.get(PREVIEW_IMAGE_NAME)
    if image is not None:
        for space in _image_editor_spaces(context):
            if space.image == image:
                space.image = None
        bpy.data.images.remove(image)


def _image_editor_spaces(context):
    screen = getattr(context, "screen", None)
    if screen is None:
        return []
    return [area.spaces.active for area in screen.areas if area.type == "IMAGE_EDITOR"]
