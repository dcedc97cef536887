"""Control images: what each ControlNet expects, and the default ControlNet per family.

numpy only (no torch, no bpy): the Blender bridge imports this to encode the depth and
normal images it computes from the scene, and the engine reads the defaults from here.
This module is the one place these conventions are written down.

Depth (``control == "DEPTH"``) - what ``lllyasviel/control_v11f1p_sd15_depth``,
``diffusers/controlnet-depth-sdxl-1.0`` and SD-2 depth models were trained on: MiDaS-style
*inverse* depth (disparity), normalised, **near = white**. :func:`encode_depth` maps the
visible geometry's inverse depth linearly onto ``[DEPTH_FAR_VALUE, 1]`` (nearest point 1,
farthest visible point ``DEPTH_FAR_VALUE``) and the background (no geometry) to 0 (black),
the same value in R, G and B.

Normals (``control == "NORMAL"``) - what ``lllyasviel/control_v11p_sd15_normalbae`` was
trained on: Bae et al.'s ScanNet normal maps ("any normal map from a rendering engine works
as long as it follows ScanNet's protocol", ControlNet 1.1 model card), i.e. *camera-space*
unit normals encoded as ``(n + 1) / 2`` with

* R = the normal's component towards the image's **left**  (a left-facing surface is red),
* G = the component towards the image's **top**            (an upward-facing surface is green),
* B = the component towards the **viewer**                 (a surface facing the camera is blue),

so a surface facing the camera is ``(0.5, 0.5, 1.0)``. In Blender's camera space (x right,
y up, the camera looks down -z) that is ``R = (1 - x) / 2, G = (1 + y) / 2, B = (1 + z) / 2``:
**x is flipped**, y and z are not. The same rule is what ControlNet 1.0's normal model
computed from MiDaS depth (Sobel of inverse depth: +x where the surface faces left) and what
Dream Textures renders for normalbae. The background is ``BACKGROUND_NORMAL`` (flat, facing
the viewer), as ControlNet 1.0's preprocessor left it.

Images here are float32, top row first (image order, not Blender's bottom-up rows).
"""

from __future__ import annotations

import numpy as np

DEPTH_FAR_VALUE = 0.1  # the farthest visible geometry; > 0 keeps its silhouette apart from the black background
BACKGROUND_DEPTH = 0.0
BACKGROUND_NORMAL = (0.5, 0.5, 1.0)
# Blender camera space (x right, y up, z towards the viewer) -> normalbae's (left, up, towards the viewer).
NORMAL_AXIS_SIGNS = (-1.0, 1.0, 1.0)

# (model family, control) -> the ControlNet used when ``control_model`` is "". Only models that exist on
# the Hugging Face hub with .safetensors weights in the diffusers layout.
DEFAULT_CONTROL_MODELS: dict[tuple[str, str], str] = {
    ("SD1", "DEPTH"): "lllyasviel/control_v11f1p_sd15_depth",
    ("SD1", "NORMAL"): "lllyasviel/control_v11p_sd15_normalbae",
    ("SDXL", "DEPTH"): "diffusers/controlnet-depth-sdxl-1.0",
    # TILE (the upscaler's detail pass): the control image is the (resized, soft) tile itself.
    ("SD1", "TILE"): "lllyasviel/control_v11f1e_sd15_tile",
    ("SDXL", "TILE"): "xinsir/controlnet-tile-sdxl-1.0",
}
# Why a (family, control) pair has no default, said to the user with the fix (set control_model).
NO_DEFAULT_REASONS: dict[tuple[str, str], str] = {
    ("SDXL", "NORMAL"): (
        "there is no normal-map ControlNet for SDXL in the diffusers format to default to (the SDXL 'union' "
        "ControlNets need their own pipeline); use control DEPTH, or set control_model to an SDXL normal-map "
        "ControlNet"
    ),
    ("SD2", "DEPTH"): (
        "the SD 2.x depth ControlNets are published only as pickle (.bin) files; use the SD 2 depth model "
        "stabilityai/stable-diffusion-2-depth as the model (it reads the depth image itself), or set "
        "control_model to an SD 2.x depth ControlNet"
    ),
    ("SD2", "TILE"): (
        "there is no tile ControlNet for SD 2.x in the diffusers format; upscale with Detail Strength 0 (a plain "
        "resize), with control NONE (img2img tiles), or set control_model to an SD 2.x tile ControlNet"
    ),
    ("SD2", "NORMAL"): (
        "the SD 2.x normal-map ControlNets are published only as pickle (.bin) files; set control_model to an "
        "SD 2.x normal-map ControlNet (.safetensors)"
    ),
}


def default_control_model(family: str, control: str) -> str | None:
    """The default ControlNet for ``family`` (``SD1``/``SD2``/``SDXL``) and ``control``, or None."""
    return DEFAULT_CONTROL_MODELS.get((family, control))


def no_default_reason(family: str, control: str) -> str:
    """Why there is no default ControlNet for this pair (for the error message)."""
    return NO_DEFAULT_REASONS.get((family, control), f"there is no default {control} ControlNet for {family} models")


def encode_depth(depth: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Camera distances -> the DEPTH control image (normalised inverse depth, near = white).

    Args:
        depth: float ``(height, width)``: distance along the view axis (> 0) where geometry is
            seen; anything where ``visible`` is False (or non-finite / <= 0) is background.
        visible: bool ``(height, width)``; None = every finite positive depth.

    Returns:
        float32 ``(height, width, 3)``, top row as given, grey (R = G = B): nearest point 1,
        farthest visible point ``DEPTH_FAR_VALUE``, background 0. One depth everywhere -> all 1.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a (height, width) array; got shape {depth.shape}.")
    seen = np.isfinite(depth) & (depth > 0)
    if visible is not None:
        if np.shape(visible) != depth.shape:
            raise ValueError(f"visible must have the depth's shape {depth.shape}; got {np.shape(visible)}.")
        seen &= np.asarray(visible, dtype=bool)
    value = np.full(depth.shape, BACKGROUND_DEPTH, dtype=np.float64)
    if seen.any():
        inverse = 1.0 / depth[seen]
        low, high = float(inverse.min()), float(inverse.max())
        if high > low:
            value[seen] = DEPTH_FAR_VALUE + (1.0 - DEPTH_FAR_VALUE) * (inverse - low) / (high - low)
        else:
            value[seen] = 1.0
    return np.repeat(value.astype(np.float32)[..., None], 3, axis=-1)


def encode_normals(normals: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Blender camera-space normals -> the NORMAL control image in normalbae's convention (see above).

    Args:
        normals: float ``(height, width, 3)``: unit normals in the camera's own space (Blender:
            x right, y up, z towards the viewer), facing the camera (normalised here).
        visible: bool ``(height, width)``; where False the pixel is background. None = where the
            normal is finite and non-zero.

    Returns:
        float32 ``(height, width, 3)`` in 0..1: R = left, G = up, B = towards the viewer, each
        ``(component + 1) / 2``; background ``BACKGROUND_NORMAL``.
    """
    normals = np.asarray(normals, dtype=np.float64)
    if normals.ndim != 3 or normals.shape[2] != 3:
        raise ValueError(f"normals must be a (height, width, 3) array; got shape {normals.shape}.")
    length = np.linalg.norm(normals, axis=-1)
    seen = np.isfinite(length) & (length > 0)
    if visible is not None:
        if np.shape(visible) != normals.shape[:2]:
            raise ValueError(f"visible must have shape {normals.shape[:2]}; got {np.shape(visible)}.")
        seen &= np.asarray(visible, dtype=bool)
    out = np.empty(normals.shape, dtype=np.float32)
    out[...] = BACKGROUND_NORMAL
    unit = normals[seen] / length[seen][:, None] * np.asarray(NORMAL_AXIS_SIGNS)
    out[seen] = np.clip((unit + 1.0) * 0.5, 0.0, 1.0)
    return out
