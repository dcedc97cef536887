"""The pixel bridge: Blender images <-> float32 numpy arrays.

Arrays are (height, width, 4) float32 with the TOP row first, as images are
everywhere outside Blender; Blender stores rows bottom-up, and this module is
the one place that flips them. Byte images hold their values in their own
colourspace (sRGB for colour textures), float images hold scene-linear values.
"""

import os
import struct
import tempfile
import zlib

import bpy
import numpy as np

from ..cli.support import PNG_SIGNATURE, png_chunk

# Byte images in these colourspaces store display-ready values as they are.
_DISPLAY_READY_BYTE_COLORSPACES = {"sRGB", "Non-Color"}


def read_pixels(image: bpy.types.Image) -> np.ndarray:
    """The image's stored values, (h, w, 4) float32, top row first."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"Image '{image.name}' has no pixels (size {width}x{height})")
    buffer = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(buffer)
    return np.flipud(buffer.reshape(height, width, 4))


def write_pixels(image: bpy.types.Image, array: np.ndarray) -> None:
    """Write a (h, w, 3|4) top-row-first array into an image of the same size."""
    width, height = image.size
    if array.ndim != 3 or array.shape[:2] != (height, width) or array.shape[2] not in (3, 4):
        raise ValueError(
            f"array must have shape ({height}, {width}, 3|4) to fill image '{image.name}', got {array.shape}"
        )
    rgba = np.empty((height, width, 4), dtype=np.float32)
    rgba[..., : array.shape[2]] = array
    if array.shape[2] == 3:
        rgba[..., 3] = 1.0
    image.pixels.foreach_set(np.ascontiguousarray(np.flipud(rgba)).ravel())
    image.update()


def new_display_image(name: str, array: np.ndarray) -> bpy.types.Image:
    """A byte sRGB image holding display-referred ``array`` (h, w, 3|4)."""
    height, width = array.shape[:2]
    image = bpy.data.images.new(name, width=width, height=height, alpha=True, float_buffer=False)
    try:
        image.colorspace_settings.name = "sRGB"
        write_pixels(image, array)
    except Exception:
        bpy.data.images.remove(image)
        raise
    return image


def encode_png(array: np.ndarray, level: int = 1) -> bytes:
    """A (h, w, 3|4) top-row-first array in 0..1 as the bytes of an 8-bit RGBA PNG: the byte values Blender's
    ``pixels.foreach_set`` stores in a byte image (clamped, x * 255 + 0.5 truncated). Numpy and zlib only,
    so it runs on a worker thread; zlib level 1: the fastest, a little larger than Blender's own PNG."""
    height, width = array.shape[:2]
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"array must have shape (h, w, 3|4), got {array.shape}")
    rows = np.zeros((height, 1 + width * 4), dtype=np.uint8)  # filter byte 0 (None) before each row
    rgba = rows[:, 1:].reshape(height, width, 4)
    rgba[..., :array.shape[2]] = (np.clip(array, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    if array.shape[2] == 3:
        rgba[..., 3] = 255
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows.data, level))
            + png_chunk(b"IEND", b""))


def new_packed_png_image(name: str, png: bytes) -> bpy.types.Image:
    """A byte sRGB image packed from PNG bytes (``encode_png``): nothing is encoded here, and Blender decodes the
    PNG when the image is first drawn or read. The same pixels as ``new_display_image`` of the array, packed."""
    image = bpy.data.images.new(name, width=1, height=1, alpha=True, float_buffer=False)
    try:
        image.colorspace_settings.name = "sRGB"
        image.pack(data=png, data_len=len(png))
        image.source = "FILE"  # its pixels: the packed PNG
    except Exception:
        bpy.data.images.remove(image)
        raise
    return image


def read_display_pixels(image: bpy.types.Image) -> np.ndarray:
    """What the image looks like on an sRGB display: (h, w, 4) float32 0..1, top row first.

    Byte sRGB (and Non-Color data) images are read as they are; anything else
    (float buffers, other colourspaces) goes through Blender's colour
    management with the Standard view transform, by saving an 8-bit PNG.
    """
    if not image.is_float and image.colorspace_settings.name in _DISPLAY_READY_BYTE_COLORSPACES:
        return read_pixels(image)
    with tempfile.TemporaryDirectory(prefix="latent_textures_") as folder:
        path = os.path.join(folder, "display.png")
        save_display_png(image, path, view_transform="Standard")
        return load_png_pixels(path)


def save_display_png(image: bpy.types.Image, path: str, *, view_transform: str | None = None,
                     scene: bpy.types.Scene | None = None) -> None:
    """Save ``image`` as an 8-bit PNG through Blender's colour management.

    With ``scene``, its view transform and look apply (a render as the artist
    sees it); with ``view_transform``, a temporary scene uses that transform.
    """
    temporary_scene = None
    if scene is None:
        temporary_scene = bpy.data.scenes.new("latent_textures_colour")
        scene = temporary_scene
        scene.display_settings.display_device = "sRGB"
        scene.view_settings.view_transform = view_transform or "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
    settings = scene.render.image_settings
    saved = (settings.file_format, settings.color_mode, settings.color_depth)
    try:
        settings.file_format = "PNG"
        settings.color_mode = "RGBA"
        settings.color_depth = "8"
        image.save_render(path, scene=scene)
    finally:
        settings.file_format, settings.color_mode, settings.color_depth = saved
        if temporary_scene is not None:
            bpy.data.scenes.remove(temporary_scene)


def load_png_pixels(path: str) -> np.ndarray:
    """Pixels of an 8-bit PNG as stored (display-referred), leaving no datablock behind."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        image.colorspace_settings.name = "sRGB"
        return read_pixels(image)
    finally:
        bpy.data.images.remove(image)


def _tent_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, (target, taps) each, of a tent filter resampling ``source`` -> ``target``.

    Upscaling: the tent is one source pixel wide on each side, i.e. bilinear. Downscaling by
    ``s``: it is ``s`` source pixels wide, so every source pixel counts (the prefilter
    against aliasing) - like PIL's and torch's antialiased bilinear.
    """
    scale = source / target
    support = max(scale, 1.0)
    centres = (np.arange(target, dtype=np.float64) + 0.5) * scale - 0.5
    first = np.floor(centres - support).astype(np.int64) + 1
    taps = int(np.ceil(2 * support)) + 1
    index = first[:, None] + np.arange(taps)[None, :]
    weights = np.clip(1.0 - np.abs(index - centres[:, None]) / support, 0.0, None)
    weights[(index < 0) | (index >= source)] = 0.0  # beyond the border: left out, the rest renormalised
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(index, 0, source - 1), weights.astype(np.float32)


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch (h, w, c) to (height, width, c): bilinear up, antialiased (tent prefilter) down.

    Stretching (not cropping) keeps texture space intact: pixel (u, v) of the
    source lands on (u, v) of the result, so a texture stays aligned to its UVs.
    Shrinking averages every source pixel under each result pixel, so fine
    patterns become their mean instead of aliasing into moiré.
    """
    src_h, src_w = array.shape[:2]
    if (src_h, src_w) == (height, width):
        return array.astype(np.float32, copy=True)
    rows, row_weights = _tent_taps(src_h, height)
    shrunk = np.zeros((height, src_w) + array.shape[2:], dtype=np.float32)
    for tap in range(rows.shape[1]):  # one pass per tap: memory stays at one result-sized array
        shrunk += array[rows[:, tap]] * row_weights[:, tap, None, None]
    cols, col_weights = _tent_taps(src_w, width)
    out = np.zeros((height, width) + array.shape[2:], dtype=np.float32)
    for tap in range(cols.shape[1]):
        out += shrunk[:, cols[:, tap]] * col_weights[None, :, tap, None]
    return out
