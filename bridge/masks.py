"""Inpainting masks from Blender images: (height, width) float32 0..1, top row first, 1 = repaint.

One rule for every mask: it is read as displayed (what the artist painted and sees), turned
into one value per pixel (white = 1 = repaint), and stretched to the generation's width x
height like a source image (pixel (u, v) of the mask lands on (u, v) of the result, whatever
its size or aspect).
"""

from __future__ import annotations

import bpy
import numpy as np

from . import pixels

# Rec. 709 luma of the displayed colour: a grey painted at 50 % repaints half as strongly.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def mask_from_image(image: bpy.types.Image, width: int, height: int) -> np.ndarray:
    """A mask Image (white = repaint, black = keep; its alpha is ignored) at width x height."""
    display = _display(image, "Mask")
    value = display[..., :3] @ _LUMA
    return _fit(value, width, height)


def mask_from_alpha(image: bpy.types.Image | None, width: int, height: int) -> np.ndarray:
    """Repaint where ``image`` is transparent (mask = 1 - alpha), at width x height."""
    if image is None:
        raise ValueError("Source is Image but no source image is set: pick one in the panel")
    display = _display(image, "Source")
    return _fit(1.0 - display[..., 3], width, height)


def _display(image: bpy.types.Image, role: str) -> np.ndarray:
    try:
        return pixels.read_display_pixels(image)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{role} image '{image.name}' cannot be read: {error}") from error


def _fit(value: np.ndarray, width: int, height: int) -> np.ndarray:
    resized = pixels.resize(value[..., None].astype(np.float32), height, width)[..., 0]
    return np.clip(resized, 0.0, 1.0).astype(np.float32)
