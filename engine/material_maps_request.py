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
SEAMLESS_AXES = ("NONE", "X", "Y", "BOTH")
# The albedo's colour: MODEL as the intrinsics model paints it; LIT its luminance with the lit image's chroma
# (map_numerics.match_chroma: Marigold's intrinsics, trained on interiors, pull albedo towards grey).
ALBEDO_CHROMA = ("MODEL", "LIT")
INTRINSICS_MAPS = ("ALBEDO", "ROUGHNESS", "METALLIC")  # one intrinsics run makes all three
NORMALS_MAPS = ("NORMAL", "HEIGHT")  # height is integrated from the normals (map_numerics.height_from_normals)
MAX_SIDE = 8192


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
        albedo_chroma: ``LIT`` (default) the albedo keeps its luminance and takes the lit image's chroma;
            ``MODEL`` the albedo as the model paints it (see ``ALBEDO_CHROMA``).
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
    albedo_chroma: str = "LIT"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and what it accepts."""
        image = self.image
        if not (isinstance(image, np.ndarray) and image.dtype == np.float32 and image.ndim == 3
                and image.shape[2] in (3, 4)):
            raise ValueError("image must be a float32 (height, width, 3 or 4) array; got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}.")
        if not (1 <= image.shape[0] <= MAX_SIDE and 1 <= image.shape[1] <= MAX_SIDE):
            raise ValueError(f"image sides must be 1 to {MAX_SIDE} pixels; got {image.shape[1]}x{image.shape[0]}.")
        if not np.isfinite(image).all() or float(image.min()) < 0.0 or float(image.max()) > 1.0:
            raise ValueError("image must hold finite values in 0..1 (display-referred sRGB).")
        if not isinstance(self.maps, tuple) or not self.maps or any(m not in MAP_KINDS for m in self.maps):
            raise ValueError(f"maps must be a non-empty tuple of {', '.join(MAP_KINDS)}; got {self.maps!r}.")
        if len(set(self.maps)) != len(self.maps):
            raise ValueError(f"maps must name each map once; got {self.maps!r}.")
        if self.seamless not in SEAMLESS_AXES:
            raise ValueError(f"seamless must be one of {', '.join(SEAMLESS_AXES)}; got {self.seamless!r}.")
        for name in ("pbr_model", "normals_model"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string (\"\" = the default); got {getattr(self, name)!r}.")
        if self.steps is not None and not (isinstance(self.steps, int) and 1 <= self.steps <= 50):
            raise ValueError(f"steps must be None (the model's default) or 1 to 50; got {self.steps!r}.")
        if not (isinstance(self.ensemble_size, int) and 1 <= self.ensemble_size <= 10):
            raise ValueError(f"ensemble_size must be 1 to 10; got {self.ensemble_size!r}.")
        resolution = self.processing_resolution
        if resolution is not None and not (isinstance(resolution, int) and 0 <= resolution <= 4096):
            raise ValueError("processing_resolution must be None (the model's default), 0 (the image's own) "
                             f"or up to 4096; got {resolution!r}.")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= 2**31 - 1):
            raise ValueError(f"seed must be an integer 0 to 2**31 - 1 (Blender's int); got {self.seed!r}.")
        if self.albedo_chroma not in ALBEDO_CHROMA:
            raise ValueError(f"albedo_chroma must be one of {', '.join(ALBEDO_CHROMA)}; got {self.albedo_chroma!r}.")

    @property
    def wrap_x(self) -> bool:
        return self.seamless in ("X", "BOTH")

    @property
    def wrap_y(self) -> bool:
        return self.seamless in ("Y", "BOTH")


@dataclass
class MaterialMapsResult:
    """The maps asked for, each float32 at the image's size, top row first.

    ``maps`` keys are lower-case map names: ``albedo`` ``(h, w, 3)`` sRGB 0..1; ``roughness``,
    ``metallic`` ``(h, w)`` linear 0..1; ``normal`` ``(h, w, 3)`` unit vectors in the *camera frame*
    (X right, Y up, Z towards the viewer; for a flat texture this is its tangent-space normal);
    ``height`` ``(h, w)`` 0..1. ``recipes`` holds, per map, the keys its image's recipe adds to the
    source's: ``pbr_map`` (the map's name), ``pbr_model`` or ``normals_model`` (the model as asked for) and
    ``pbr``, a dict of the run's own knobs, nested so that none overwrites the source's keys of the same name:
    ``model_files``, ``model_revision``, ``steps``, ``processing_resolution``, ``processing_size``,
    ``ensemble_size``, ``seed``, ``seamless`` (+ ``albedo_chroma``; height: ``height_from``, ``height_span_px``).
    ``timings`` (seconds): ``load_<kind>``, ``intrinsics``, ``normals`` (each run), ``height`` (integration).
    """

    maps: dict[str, np.ndarray] = field(repr=False)
    recipes: dict[str, dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
