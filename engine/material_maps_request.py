"""The contract of material maps (issue 30): what a caller asks for and what it gets back.

numpy and the standard library only, like ``request.py``: the add-on builds these without torch.
The maps come from Marigold pipelines (intrinsics: albedo + roughness/metallic; normals; depth),
each in its own cache slot beside the artist's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAP_KINDS = ("ALBEDO", "ROUGHNESS", "METALLIC", "NORMAL", "HEIGHT")
DEFAULT_PBR_MODEL = "prs-eth/marigold-iid-appearance-v1-1"
DEFAULT_NORMALS_MODEL = "prs-eth/marigold-normals-v1-1"
DEFAULT_DEPTH_MODEL = "prs-eth/marigold-depth-v1-1"


@dataclass(frozen=True)
class MaterialMapsRequest:
    """Material maps for one image.

    Args:
        image: the lit picture, float32 ``(h, w, 3|4)`` display-referred sRGB in 0..1, top row first.
        maps: a subset of ``MAP_KINDS``; the maps come back at the image's size.
        seamless: ``NONE``/``X``/``Y``/``BOTH``: the image tiles along these axes, so its maps must too.
        pbr_model: intrinsics model ("" = ``DEFAULT_PBR_MODEL``); read for ALBEDO, ROUGHNESS, METALLIC.
        normals_model: normals model ("" = ``DEFAULT_NORMALS_MODEL``); read for NORMAL (and HEIGHT).
        steps, ensemble_size, processing_resolution: Marigold's own knobs; None = the model's defaults.
        seed: Marigold starts from noise too; the same seed gives the same maps.
    """

    image: np.ndarray = field(repr=False)
    maps: tuple[str, ...]
    seamless: str = "NONE"
    pbr_model: str = ""
    normals_model: str = ""
    steps: int | None = None
    ensemble_size: int = 1
    processing_resolution: int | None = None
    seed: int = 0


@dataclass
class MaterialMapsResult:
    """The maps asked for, each float32 at the image's size, top row first.

    ``maps`` keys are lower-case map names: ``albedo`` ``(h, w, 3)`` sRGB 0..1; ``roughness``,
    ``metallic`` ``(h, w)`` linear 0..1; ``normal`` ``(h, w, 3)`` unit vectors in the *camera frame*
    (X right, Y up, Z towards the viewer; for a flat texture this is its tangent-space normal);
    ``height`` ``(h, w)`` 0..1. ``recipes`` holds, per map, the keys its image's recipe adds to the
    source's (``pbr_map``, the model and its revision, steps, processing resolution, ensemble size).
    """

    maps: dict[str, np.ndarray] = field(repr=False)
    recipes: dict[str, dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
