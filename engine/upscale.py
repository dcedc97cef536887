"""Upscaling, the contract: ``UpscaleRequest``, the size limits and the recipe, shared by both methods.

``TILED_DIFFUSION`` (``upscale_tiled.py``): a Lanczos resize, then the artist's model redraws
overlapping tiles at its native size as ordinary img2img generations. ``X4_UPSCALER``
(``upscale_x4.py``): the dedicated x4 model paints every tile from the source. Both blend the tiles
with weights that sum to one (``tiles.py``), place them modulo the size on wrapped (seamless) axes,
and derive the seed of tile k from the run's seed (``tile_seed``), so a recipe reproduces the whole image.

Imports only numpy at module level (the request type is used by the add-on).
"""

from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import tiles
from .request import MAX_SEED, MAX_STEPS, SCHEDULERS, SEAMLESS_AXES, ReferenceSpec

FACTORS = (2, 4)
# TILED_DIFFUSION: Lanczos, then the artist's model redraws tiles; X4_UPSCALER: the dedicated x4 model (upscale_x4.py)
UPSCALE_METHODS = ("TILED_DIFFUSION", "X4_UPSCALER")
UPSCALE_CONTROLS = ("TILE", "NONE")
DEFAULT_STRENGTH = 0.35
MAX_OUTPUT_SIDE = 16384  # pixels: beyond this Blender's packed images and most GPUs' textures give up
# What the tiled upscale holds in RAM per output pixel: the resized float32 RGB, the float64 weighted
# sum (RGB) and weight, the float32 RGBA result and Blender's float RGBA copy of it.
BYTES_PER_OUTPUT_PIXEL = 3 * 4 + 3 * 8 + 8 + 4 * 4 + 4 * 4
MEMORY_SHARE = 0.5  # of the machine's RAM
X4_FACTOR = 4  # the dedicated upscaler's own factor; x2 is its result halved
DEFAULT_NOISE_LEVEL = 20  # diffusers' default: how much noise the low-res input gets (0..max_noise_level)
MAX_NOISE_LEVEL = 350  # the real model's max_noise_level; a model's own config is checked at run time
DEFAULT_UPSCALER = "stabilityai/stable-diffusion-x4-upscaler"  # X4_UPSCALER with upscaler_model ""
# The smallest tile_size the default overlap allows: tiles overlap by tiles.MIN_OVERLAP and must be larger.
MIN_TILE_SIZE = tiles.MIN_OVERLAP + 8
MAX_TILE_SIZE = 2048  # twice SDXL's native size; larger tiles leave the models' trained range


def check_tile_size(tile_size: int, name: str = "Tile Size") -> None:
    """0 (the model's own size), else a multiple of 8 from ``MIN_TILE_SIZE`` to ``MAX_TILE_SIZE``.

    The operator's property clamps at its max silently, so callers that take a number from elsewhere (the
    CLI) check it here first; ``name`` is how the caller's user knows the setting.
    """
    if tile_size and (tile_size < MIN_TILE_SIZE or tile_size > MAX_TILE_SIZE or tile_size % 8):
        raise ValueError(f"{name} must be 0 (the model's own size) or a multiple of 8 from {MIN_TILE_SIZE} to "
                         f"{MAX_TILE_SIZE} px (neighbouring tiles overlap by {tiles.MIN_OVERLAP} px); got {tile_size} px")


@dataclass
class UpscaleRequest:
    """What to upscale and how. ``validate()`` checks every field.

    Args:
        image: float32 ``(height, width, 3|4)`` in 0..1, display-referred, top row first.
        model: the model that redraws the tiles (repo id, diffusers folder or .safetensors).
        factor: 2 or 4.
        strength: how much of each resized tile the model repaints, 0..1; 0 = the Lanczos
            resize alone (no model run).
        seamless: the axes the source tiles along (``NONE``/``X``/``Y``/``BOTH``); tiles wrap there.
        tile_size: tile side in pixels (multiple of 8), 0 = the model's native size.
        tile_overlap: least overlap of neighbouring tiles, >= ``tiles.MIN_OVERLAP``.
        control: ``TILE`` conditions every tile on the resized tile (tile ControlNet), ``NONE``
            is plain img2img.
        control_model: the tile ControlNet; "" = the default for the model's family.
        method: ``TILED_DIFFUSION`` (the fields above) or ``X4_UPSCALER``: the dedicated x4 model
            ``upscaler_model`` ("" = ``stabilityai/stable-diffusion-x4-upscaler``) paints every tile from
            the source itself, with ``noise_level``; strength, control and LoRAs do not apply to it, and
            ``tile_size`` 0 is its native 512 px.
        noise_level: X4_UPSCALER: noise added to the source, 0..350 (more: freer, less faithful).
        prompt, negative_prompt, steps, guidance_scale, scheduler, seed, loras: as for Generate.
        reference: TILED_DIFFUSION: every tile follows this reference image (``ReferenceSpec``, as for
            Generate; its embedding computed once); X4_UPSCALER takes none (said in ``ignored`` and the recipe).
    """

    image: np.ndarray = field(repr=False)
    model: str
    prompt: str = ""
    negative_prompt: str = ""
    factor: int = 4
    strength: float = DEFAULT_STRENGTH
    steps: int = 20
    guidance_scale: float = 7.5
    scheduler: str = "DPM_SOLVER_MULTISTEP"
    seed: int | None = None
    seamless: str = "NONE"
    tile_size: int = 0
    tile_overlap: int = tiles.MIN_OVERLAP
    control: str = "TILE"
    control_model: str = ""
    control_strength: float = 1.0
    loras: tuple[Any, ...] = ()
    method: str = "TILED_DIFFUSION"
    upscaler_model: str = ""
    noise_level: int = DEFAULT_NOISE_LEVEL
    reference: ReferenceSpec | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and what it accepts."""
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.float32 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError("image must be a float32 array of shape (height, width, 3 or 4) with values in 0..1.")
        if not np.isfinite(image[..., :3]).all() or image.min() < 0 or image.max() > 1:
            raise ValueError("image must have finite values in 0..1 (display-referred, not HDR).")
        if self.factor not in FACTORS:
            raise ValueError(f"factor must be one of {', '.join(map(str, FACTORS))}; got {self.factor!r}.")
        if not isinstance(self.strength, numbers.Real) or not 0 <= self.strength <= 1:
            raise ValueError(f"strength must be a number from 0 to 1; got {self.strength!r}.")
        if self.seamless not in SEAMLESS_AXES:
            raise ValueError(f"seamless must be one of {', '.join(SEAMLESS_AXES)}; got {self.seamless!r}.")
        if self.control not in UPSCALE_CONTROLS:
            raise ValueError(f"control must be one of {', '.join(UPSCALE_CONTROLS)}; got {self.control!r}.")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got {self.scheduler!r}.")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be an integer from 1 to {MAX_STEPS}; got {self.steps!r}.")
        if self.method not in UPSCALE_METHODS:
            raise ValueError(f"method must be one of {', '.join(UPSCALE_METHODS)}; got {self.method!r}.")
        if not isinstance(self.noise_level, int) or not 0 <= self.noise_level <= MAX_NOISE_LEVEL:
            raise ValueError(
                f"noise_level must be an integer from 0 to {MAX_NOISE_LEVEL}; got {self.noise_level!r}."
            )
        if self.method == "TILED_DIFFUSION" and self.strength and int(self.steps * self.strength) < 1:
            raise ValueError(
                f"strength x steps must be at least 1 (each tile runs int(steps x strength) steps); "
                f"got strength {self.strength!r} with {self.steps} steps."
            )
        if not isinstance(self.tile_size, int) or self.tile_size < 0 or self.tile_size % 8:
            raise ValueError(f"tile_size must be 0 (the model's size) or a positive multiple of 8; got {self.tile_size!r}.")
        if not isinstance(self.tile_overlap, int) or self.tile_overlap < tiles.MIN_OVERLAP:
            raise ValueError(f"tile_overlap must be at least {tiles.MIN_OVERLAP} pixels; got {self.tile_overlap!r}.")
        if self.tile_size and self.tile_overlap >= self.tile_size:
            raise ValueError(f"tile_overlap must be less than tile_size ({self.tile_size}); got {self.tile_overlap}.")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED):
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, or None; got {self.seed!r}.")
        if self.reference is not None:
            if not isinstance(self.reference, ReferenceSpec):
                raise ValueError(f"reference must be a ReferenceSpec or None; got {type(self.reference).__name__}.")
            self.reference.validate()
        check_fits(image.shape[0], image.shape[1], self.factor, x4_upscaler=self.method == "X4_UPSCALER")

    @property
    def wrap_x(self) -> bool:
        return self.seamless in ("X", "BOTH")

    @property
    def wrap_y(self) -> bool:
        return self.seamless in ("Y", "BOTH")


def output_bytes(height: int, width: int, factor: int) -> int:
    return height * factor * width * factor * BYTES_PER_OUTPUT_PIXEL


def largest_factor_that_fits(height: int, width: int, memory: int | None) -> int | None:
    fitting = [f for f in FACTORS if _fits(height, width, f, memory)]
    return max(fitting) if fitting else None


def _fits(height: int, width: int, factor: int, memory: int | None) -> bool:
    if max(height, width) * factor > MAX_OUTPUT_SIDE:
        return False
    return memory is None or output_bytes(height, width, factor) <= MEMORY_SHARE * memory


def check_fits(height: int, width: int, factor: int, memory: int | None = None, *, x4_upscaler: bool = False) -> None:
    """Refuse, before anything runs, an output too large for ``MAX_OUTPUT_SIDE`` or for the RAM.

    The message names the largest factor that fits. ``memory`` defaults to this machine's RAM.
    ``x4_upscaler``: the dedicated upscaler holds the x4 image even for x2 (it is halved after).
    """
    if memory is None:
        memory = _machine_memory()
    if x4_upscaler and factor != X4_FACTOR and not _fits(height, width, X4_FACTOR, memory):
        need = output_bytes(height, width, X4_FACTOR) / 2**30
        raise ValueError(
            f"factor is too large for the x4 upscaler: it paints {width * 4}x{height * 4} pixels (~{need:.1f} GB "
            f"to hold) even for x{factor}; use the Tiled Diffusion method or a smaller image."
        )
    if _fits(height, width, factor, memory):
        return
    best = largest_factor_that_fits(height, width, memory)
    need = output_bytes(height, width, factor) / 2**30
    what = f"x{factor} of {width}x{height} gives {width * factor}x{height * factor} pixels (~{need:.1f} GB to hold)"
    limit = f"at most {MAX_OUTPUT_SIDE} pixels a side and half of this machine's memory"
    advice = f"the largest factor that fits is x{best}" if best else "no factor fits: use a smaller image"
    raise ValueError(f"factor is too large: {what}; the limit is {limit} - {advice}.")


def _machine_memory() -> int | None:
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def tile_seed(seed: int, index: int) -> int:
    """The seed of tile ``index``: derived from the run's seed, so a recipe reproduces every tile."""
    digest = hashlib.sha256(f"latent_textures.upscale:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & MAX_SEED


def upscale_recipe(
    request: UpscaleRequest, seed: int, tile_size: int, count: int, generation: dict[str, Any]
) -> dict[str, Any]:
    """The recipe of an upscale: ``upscale`` (what was asked, ``count`` tiles of ``tile_size``) and the new size;
    ``generation``: a tile's own recipe (the ControlNet and LoRAs it resolved, the device and dtype it ran in), {}
    where none ran; the upscale's ``device`` and ``dtype`` go in ``upscale`` (the source's own stay at the top)."""
    ran_in = {key: generation[key] for key in ("device", "dtype") if key in generation}
    return {
        "upscale": {
            "factor": request.factor,
            "strength": float(request.strength),
            "method": "TILED_DIFFUSION" if request.strength > 0 else "LANCZOS",
            "seamless": request.seamless,
            "tile_size": tile_size,
            "tile_overlap": request.tile_overlap,
            "tiles": count,
            "control": request.control if request.strength > 0 else "NONE",
            "control_model": generation.get("control_model", request.control_model),
            "loras": list(generation.get("loras", [])),  # those the tiles ran with (none: no tile was redrawn)
            "seed": seed,
            "steps": request.steps,
            "prompt": request.prompt,
            "model": request.model,
            **ran_in,
            **({"reference": generation.get("reference") or request.reference.not_applied()}
               if request.reference is not None else {}),
        },
        "width": int(request.image.shape[1] * request.factor),
        "height": int(request.image.shape[0] * request.factor),
        "seed": seed,
    }


def size_check_message(height: int, width: int, factor: int, *, x4_upscaler: bool = False) -> str | None:
    """The refusal ``check_fits`` would raise, or None (for the panel, before clicking)."""
    try:
        check_fits(height, width, factor, x4_upscaler=x4_upscaler)
    except ValueError as error:
        return str(error)
    return None

