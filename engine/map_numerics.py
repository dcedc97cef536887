"""The numerics of material maps (issue 30), numpy only: resampling that respects seamless axes, height from
normals (Frankot-Chellappa), reading Marigold's targets by their ``target_properties`` and the albedo colour fix.

The engine (``material_maps.py``) runs the Marigold pipelines at their processing size and brings every map back
to the image's size with ``resample``; everything here is testable without torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Height is integrated at most this many pixels a side, then resampled to the map's size: the FFTs of a mirrored
# 8192² map would take ~4 GB each (complex128), and a height field's energy is in its low frequencies anyway.
MAX_HEIGHT_SIDE = 2048
# Below this |n_z| a normal is (nearly) edge-on: its slope is clamped there, not divided by almost zero.
MIN_NORMAL_Z = 0.1
# The lit image's own chroma is trusted fully above this linear luminance, and blends into the albedo's
# own chroma towards black (in deep shadow the lit colour is mostly noise).
CHROMA_TRUST_LUMINANCE = 0.02
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)  # Rec. 709 / sRGB primaries


# --- resampling -------------------------------------------------------------------------------------------


def resample_matrix(size_in: int, size_out: int, wrap: bool) -> np.ndarray:
    """The ``(size_out, size_in)`` weights of a linear (tent) resampling along one axis, pixel centres aligned
    (``align_corners=False``), widened by the scale when shrinking (antialiased). On a ``wrap`` axis the
    tent's taps past an edge fold onto the opposite edge (the torus), else they are clamped to the edge.
    Rows sum to 1."""
    if size_in < 1 or size_out < 1:
        raise ValueError(f"sizes must be positive; got {size_in} -> {size_out}.")
    scale = size_in / size_out
    support = max(scale, 1.0)  # the tent's half-width in input pixels
    centres = (np.arange(size_out) + 0.5) * scale - 0.5
    first = np.floor(centres - support).astype(np.int64) + 1
    taps = int(np.ceil(2 * support)) + 1
    index = first[:, None] + np.arange(taps)[None, :]
    weight = np.maximum(0.0, 1.0 - np.abs(index - centres[:, None]) / support)
    index = np.mod(index, size_in) if wrap else np.clip(index, 0, size_in - 1)
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(size_out), taps), index.ravel()), weight.ravel())
    return matrix / matrix.sum(axis=1, keepdims=True)


def resample(image: np.ndarray, height: int, width: int, *, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """``image`` ``(h, w)`` or ``(h, w, c)`` resampled to ``(height, width)`` with ``resample_matrix`` per axis:
    an image that tiles along an axis still tiles after (rolling the input rolls the output)."""
    if image.shape[0] == height and image.shape[1] == width:
        return np.asarray(image, dtype=np.float32)
    # float32 throughout: an 8192² RGB map is 0.8 GB as it is (weights summing to 1: rounding ~1e-7).
    rows = resample_matrix(image.shape[0], height, wrap_y).astype(np.float32)
    cols = resample_matrix(image.shape[1], width, wrap_x).astype(np.float32)
    out = np.einsum("ai,ij...->aj...", rows, np.asarray(image, dtype=np.float32))
    return np.ascontiguousarray(np.einsum("bj,aj...->ab...", cols, out), dtype=np.float32)


def processing_size(height: int, width: int, resolution: int, multiple: int) -> tuple[int, int]:
    """The size a model reads ``(height, width)`` at: the longer side ``resolution`` (0: the image's own), the
    aspect kept, each side rounded to a multiple of ``multiple`` (so that nothing is padded: padding would
    break a seamless texture's wrap) and at least ``multiple``."""
    if resolution < 0 or multiple < 1:
        raise ValueError(f"processing_resolution must be 0 or positive; got {resolution!r}.")
    scale = resolution / max(height, width) if resolution else 1.0

    def side(n: int) -> int:
        return max(multiple, int(round(n * scale / multiple)) * multiple)

    return side(height), side(width)


# --- Marigold's targets ---------------------------------------------------------------------------------


def target_channels(target_properties: dict[str, Any]) -> dict[str, tuple[int, int | None, str]]:
    """Where each quantity is in an intrinsics model's prediction, read from its ``target_properties``:
    name -> (target index, channel or None for all three, prediction space ``srgb``/``linear``).

    A ``stack`` target's three channels are its ``sub_target_names`` (None: an unused channel)."""
    names = target_properties.get("target_names") if isinstance(target_properties, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"target_properties has no list of target_names: {target_properties!r}.")
    found: dict[str, tuple[int, int | None, str]] = {}
    for index, name in enumerate(names):
        properties = target_properties.get(name, {})
        space = properties.get("prediction_space", "srgb")
        if space == "stack":
            for channel, sub in enumerate(properties.get("sub_target_names", [])):
                if isinstance(sub, str):
                    found[sub] = (index, channel, target_properties.get(sub, {}).get("prediction_space", "srgb"))
        else:
            found[name] = (index, None, space)
    return found


# --- height from normals --------------------------------------------------------------------------------


def slopes(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The height's derivatives per pixel from camera-frame unit normals ``(h, w, 3)`` (X right, Y up, Z to the
    viewer; rows top first): ``dh/dx`` along a row and ``dh/drow`` down a column, in pixels of height per pixel.
    A surface z = h(x, y) has the normal (-dh/dx, -dh/dy, 1) up to length; rows run down, so dh/drow = n_y / n_z."""
    nz = np.maximum(normals[..., 2].astype(np.float64), MIN_NORMAL_Z)
    return -normals[..., 0] / nz, normals[..., 1] / nz


def integrate_slopes(p: np.ndarray, q: np.ndarray, *, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """Frankot-Chellappa: the height whose gradient is closest (least squares) to ``(p, q)`` = (dh/dx, dh/drow),
    solved in the Fourier domain, mean zero. A wrapped axis is periodic as it is; an unwrapped one is first
    mirrored (h even across the edge: its derivative along the axis odd), so no false wrap is imposed."""
    height, width = p.shape
    if not wrap_x:
        p = np.concatenate([p, -p[:, ::-1]], axis=1)
        q = np.concatenate([q, q[:, ::-1]], axis=1)
    if not wrap_y:
        p = np.concatenate([p, p[::-1]], axis=0)
        q = np.concatenate([q, -q[::-1]], axis=0)
    rows, cols = p.shape
    u = 2j * np.pi * np.fft.fftfreq(cols)[None, :]
    v = 2j * np.pi * np.fft.fftfreq(rows)[:, None]
    denominator = np.abs(u) ** 2 + np.abs(v) ** 2
    denominator[0, 0] = 1.0
    spectrum = (np.conj(u) * np.fft.fft2(p) + np.conj(v) * np.fft.fft2(q)) / denominator
    spectrum[0, 0] = 0.0
    return np.real(np.fft.ifft2(spectrum))[:height, :width]


def height_from_normals(normals: np.ndarray, *, wrap_x: bool, wrap_y: bool) -> tuple[np.ndarray, float]:
    """The height map of camera-frame normals ``(h, w, 3)``: float32 ``(h, w)`` in 0..1 (lowest 0, highest 1) and
    its span in pixels (how many pixel widths the highest point stands above the lowest: the Displacement
    scale is that span x the texel size). Seamless axes stay seamless (``integrate_slopes``). Maps larger than
    ``MAX_HEIGHT_SIDE`` are integrated at that size (slopes scaled with it) and resampled back."""
    height, width = normals.shape[:2]
    scale = min(1.0, MAX_HEIGHT_SIDE / max(height, width))
    if scale < 1.0:
        small = resample(normals, max(1, round(height * scale)), max(1, round(width * scale)),
                         wrap_x=wrap_x, wrap_y=wrap_y)
        normals = small / np.maximum(np.linalg.norm(small, axis=-1, keepdims=True), 1e-6)
    p, q = slopes(normals)
    h = integrate_slopes(p, q, wrap_x=wrap_x, wrap_y=wrap_y) / scale  # in pixels of the full-size map
    if scale < 1.0:
        h = resample(h, height, width, wrap_x=wrap_x, wrap_y=wrap_y).astype(np.float64)
    span = float(h.max() - h.min())
    scaled = (h - h.min()) / span if span > 0 else np.zeros_like(h)
    return scaled.astype(np.float32), span


# --- albedo colour ----------------------------------------------------------------------------------------


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """The sRGB transfer function, inverted (IEC 61966-2-1), float64."""
    c = np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1), float64."""
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def match_chroma(albedo: np.ndarray, lit: np.ndarray) -> np.ndarray:
    """The albedo with the lit image's chroma: each pixel keeps the albedo's linear luminance (the light taken
    out) and takes the lit pixel's chromaticity (its linear RGB over its luminance).

    Why: Marigold's intrinsics were trained on interiors and pull albedo towards grey; in our textures the
    baked light is mostly white, which changes a pixel's luminance, not its chromaticity, so the lit colour's
    chromaticity is the better estimate. Where the lit pixel is nearly black its chromaticity is noise: the
    albedo's own is blended in below ``CHROMA_TRUST_LUMINANCE``. Both sRGB ``(h, w, 3)`` in 0..1; returns
    float32 sRGB (clipped to 0..1 where the product leaves the gamut)."""
    albedo_linear = srgb_to_linear(albedo[..., :3])
    lit_linear = srgb_to_linear(lit[..., :3])
    albedo_luma = albedo_linear @ _LUMA
    lit_luma = lit_linear @ _LUMA
    lit_chroma = lit_linear / np.maximum(lit_luma, 1e-6)[..., None]
    own_chroma = albedo_linear / np.maximum(albedo_luma, 1e-6)[..., None]
    trust = np.clip(lit_luma / CHROMA_TRUST_LUMINANCE, 0.0, 1.0)[..., None]
    chroma = trust * lit_chroma + (1.0 - trust) * own_chroma
    return linear_to_srgb(albedo_luma[..., None] * chroma).astype(np.float32)
