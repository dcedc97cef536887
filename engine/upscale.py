"""Upscale an image x2/x4: a Lanczos resize, then the model redraws overlapping tiles at its native size.

Each tile is an ordinary img2img generation (``Engine.generate``) at a low
strength, conditioned by a tile ControlNet on the resized tile itself, with the
artist's model, LoRAs and prompt; the tiles are blended with weights that sum to
one (``tiles.py``). On wrapped (seamless) axes the tiles are placed modulo the
size, so the result tiles along the same axes. The seed of tile k is derived
from the seed, so a recipe reproduces the whole image.

Imports only numpy at module level (the request type is used by the add-on).
"""

from __future__ import annotations

import hashlib
import numbers
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import tiles, upscale_x4
from .request import MAX_SEED, MAX_STEPS, SCHEDULERS, SEAMLESS_AXES, GenerationRequest, GenerationResult, ProgressEvent

if TYPE_CHECKING:
    from .engine import Engine

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
    noise_level: int = upscale_x4.DEFAULT_NOISE_LEVEL

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
        if not isinstance(self.noise_level, int) or not 0 <= self.noise_level <= upscale_x4.MAX_NOISE_LEVEL:
            raise ValueError(
                f"noise_level must be an integer from 0 to {upscale_x4.MAX_NOISE_LEVEL}; got {self.noise_level!r}."
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
    if x4_upscaler and factor != upscale_x4.X4_FACTOR and not _fits(height, width, upscale_x4.X4_FACTOR, memory):
        need = output_bytes(height, width, upscale_x4.X4_FACTOR) / 2**30
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


def native_tile_size(engine: Engine) -> int:
    """The loaded model's own resolution (UNet sample size x the VAE's downsampling)."""
    pipe = engine._model.pipelines["TXT2IMG"] if engine._model is not None else None
    if pipe is None:
        raise ValueError("native_tile_size needs a loaded model")
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


def upscale(
    engine: Engine,
    request: UpscaleRequest,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    cancel_event: threading.Event | None = None,
    previews: bool = True,
) -> GenerationResult:
    """Run ``request`` on ``engine``'s model; see the module docstring. Progress: tile i/n and step j/m."""
    request.validate()
    seed = int(request.seed) if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    if request.method == "X4_UPSCALER":
        return _upscale_x4(engine, request, seed, on_progress, cancel_event)
    rgb = np.ascontiguousarray(request.image[..., :3], dtype=np.float32)
    big = tiles.resize(rgb, request.factor, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
    height, width = big.shape[:2]
    tile_size = request.tile_size
    layout: list[tiles.Tile] = []
    generation_recipe: dict[str, Any] = {}
    if request.strength > 0:
        if not tile_size:
            engine.load(request.model, on_progress=on_progress, cancel_event=cancel_event)
            tile_size = native_tile_size(engine)
        overlap = min(request.tile_overlap, tile_size - 8)
        layout = tiles.layout(height, width, tile_size, overlap, request.wrap_x, request.wrap_y)

        def draw(tile: tiles.Tile, pixels: np.ndarray) -> np.ndarray:
            generation = _tile_request(request, tile, pixels, seed, width, height)

            def tile_progress(event: ProgressEvent) -> None:
                if on_progress is not None:
                    on_progress(replace(event, part=tile.index + 1, parts=len(layout)))

            result = engine.generate(generation, on_progress=tile_progress, cancel_event=cancel_event,
                                     previews=previews)
            generation_recipe.update(result.recipe)
            return result.image[: tile.height, : tile.width, :3]

        big = tiles.redraw(big, layout, draw, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = big
    recipe = _recipe(request, seed, tile_size, len(layout), generation_recipe)
    return GenerationResult(image=rgba, seed=seed, recipe=recipe)


def _upscale_x4(
    engine: Engine,
    request: UpscaleRequest,
    seed: int,
    on_progress: Callable[[ProgressEvent], None] | None,
    cancel_event: threading.Event | None,
) -> GenerationResult:
    big, fields = upscale_x4.run(engine, request, seed, on_progress=on_progress, cancel_event=cancel_event)
    height, width = big.shape[:2]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = big
    recipe = _recipe(request, seed, fields["tile_size"], fields["tiles"], {})
    recipe["upscale"].update(
        method="X4_UPSCALER", control="NONE", control_model="", upscaler_model=fields["upscaler_model"],
        noise_level=fields["noise_level"], upscaler_files=fields["model_files"],
        upscaler_revision=fields.get("model_revision", ""),
    )
    ignored = []
    if request.control != "NONE" or request.loras:
        ignored.append("The tile ControlNet and LoRAs do not apply to the x4 upscaler: it is its own model and "
                       "paints every tile from the source itself (Noise Level sets how freely).")
    return GenerationResult(image=rgba, seed=seed, recipe=recipe, timings={"upscale": fields["seconds"]},
                            ignored=ignored)


def _tile_request(
    request: UpscaleRequest, tile: tiles.Tile, pixels: np.ndarray, seed: int, width: int, height: int
) -> GenerationRequest:
    padded = tiles.pad_to_multiple(pixels)
    seamless = tiles.own_wrap(tile, height, width, request.wrap_x, request.wrap_y)
    fields: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "model": request.model,
        "mode": "IMG2IMG",
        "init_image": padded,
        "strength": float(request.strength),
        "width": padded.shape[1],
        "height": padded.shape[0],
        "steps": request.steps,
        "guidance_scale": request.guidance_scale,
        "scheduler": request.scheduler,
        "seed": tile_seed(seed, tile.index),
        "seamless": seamless,
    }
    if request.control != "NONE":
        fields.update(control=request.control, control_image=padded, control_model=request.control_model,
                      control_strength=request.control_strength)
    if request.loras:
        fields["loras"] = tuple(request.loras)
    return GenerationRequest(**fields)


def _recipe(request: UpscaleRequest, seed: int, tile_size: int, count: int, generation: dict[str, Any]) -> dict[str, Any]:
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
            "seed": seed,
            "steps": request.steps,
            "prompt": request.prompt,
            "model": request.model,
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

