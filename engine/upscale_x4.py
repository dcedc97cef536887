"""The dedicated upscaler: ``stabilityai/stable-diffusion-x4-upscaler`` (``StableDiffusionUpscalePipeline``), tiled.

The pipeline allocates its latents at the *input* size and decodes four times
that, so one untiled run on a 1024² source needs a 4096² decode at once. Here the
source is cut into overlapping tiles of the model's native input size (128 px for
the real model, 512 px out), each tile is upscaled on its own with a seed derived
from the run's seed (``upscale.tile_seed``), and the 4x tiles are blended with the
weights and the wrap rule of the tiled-diffusion path (``tiles.py``): on a wrapped
axis the tiles are placed modulo the size, so a seamless texture stays seamless.
x2 is the x4 result averaged over 2x2 pixel blocks (exact, and wrap-safe).

The upscaler is its own model in its own engine slot (``Engine.load_upscaler``):
the artist's model stays loaded beside it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import tiles
from .request import ProgressEvent

if TYPE_CHECKING:
    from .engine import Engine
    from .upscale import UpscaleRequest

X4_FACTOR = 4
DEFAULT_UPSCALER = "stabilityai/stable-diffusion-x4-upscaler"
DEFAULT_NOISE_LEVEL = 20  # diffusers' default: how much noise the low-res input gets (0..max_noise_level)
MAX_NOISE_LEVEL = 350  # the real model's max_noise_level; a model's own config is checked at run time


def native_input_tile(pipe: Any) -> int:
    """The input tile side the model was trained on: its UNet's sample size (latents are at the input size)."""
    return int(pipe.unet.config.sample_size)


def size_multiple(pipe: Any) -> int:
    """Input sides must be a multiple of this: the UNet halves the size at every block but the last, and the
    pipeline's image processor would resize a side that is no multiple of the VAE's factor."""
    return max(2 ** (len(pipe.unet.config.block_out_channels) - 1), int(pipe.vae_scale_factor))


def input_tile(request: UpscaleRequest, pipe: Any) -> tuple[int, int]:
    """The tile side and overlap in *input* pixels for ``request.tile_size``/``tile_overlap`` (output pixels)."""
    side = request.tile_size // X4_FACTOR if request.tile_size else native_input_tile(pipe)
    overlap = min(math.ceil(request.tile_overlap / X4_FACTOR), side - 1)
    return side, overlap


def scaled(tile: tiles.Tile, factor: int) -> tiles.Tile:
    """``tile`` in the coordinates of the image ``factor`` times larger."""
    return tiles.Tile(tile.index, tile.y * factor, tile.x * factor, tile.height * factor, tile.width * factor)


def halve(image: np.ndarray) -> np.ndarray:
    """Average 2x2 pixel blocks: x4 -> x2. Each block is inside the image, so nothing crosses a wrapped edge."""
    height, width = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: height * 2, : width * 2].reshape(height, 2, width, 2, image.shape[2])
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def check_noise_level(noise_level: int, pipe: Any) -> None:
    limit = int(pipe.config.get("max_noise_level", MAX_NOISE_LEVEL))
    if not 0 <= noise_level <= limit:
        raise ValueError(f"noise_level must be an integer from 0 to {limit} for this upscaler; got {noise_level!r}.")


def run(
    engine: Engine,
    request: UpscaleRequest,
    seed: int,
    *,
    on_progress: Callable[[ProgressEvent], None] | None,
    cancel_event: threading.Event | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Upscale ``request.image`` x4 tile by tile (x2: then halved). Returns the RGB image and the recipe fields."""
    from .upscale import tile_seed  # imports this module lazily

    source = request.upscaler_model or DEFAULT_UPSCALER
    upscaler = engine.load_upscaler(source, on_progress=on_progress, cancel_event=cancel_event)
    pipe = upscaler.pipe
    check_noise_level(request.noise_level, pipe)
    rgb = np.ascontiguousarray(request.image[..., :3], dtype=np.float32)
    height, width = rgb.shape[:2]
    side, overlap = input_tile(request, pipe)
    layout = tiles.layout(height, width, side, overlap, request.wrap_x, request.wrap_y)
    blend = tiles.TileBlend(height * X4_FACTOR, width * X4_FACTOR, 3, request.wrap_x, request.wrap_y)
    multiple = size_multiple(pipe)
    started = time.perf_counter()
    for tile in layout:
        pixels = tiles.extract(rgb, tile, request.wrap_x, request.wrap_y)
        upscaled = engine.run_upscaler_tile(
            upscaler,
            tiles.pad_to_multiple(pixels, multiple),
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            steps=request.steps,
            guidance_scale=request.guidance_scale,
            scheduler=request.scheduler,
            noise_level=request.noise_level,
            seed=tile_seed(seed, tile.index),
            wrap=tiles.own_wrap(tile, height, width, request.wrap_x, request.wrap_y),
            on_step=_tile_progress(on_progress, tile.index + 1, len(layout), request.steps),
            cancel_event=cancel_event,
        )
        out = scaled(tile, X4_FACTOR)
        blend.add(out, upscaled[: out.height, : out.width])
    big = blend.result()
    if request.factor == 2:
        big = halve(big)
    fields = {
        "upscaler_model": source,
        "noise_level": int(request.noise_level),
        "tile_size": side * X4_FACTOR,
        "tiles": len(layout),
        "seconds": round(time.perf_counter() - started, 3),
        **upscaler.where.recipe_fields(),
    }
    return big, fields


def _tile_progress(
    on_progress: Callable[[ProgressEvent], None] | None, part: int, parts: int, steps: int
) -> Callable[[int], None] | None:
    if on_progress is None:
        return None

    def on_step(done: int) -> None:
        on_progress(ProgressEvent(done, steps, None, part=part, parts=parts))

    return on_step
