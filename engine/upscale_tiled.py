"""The tiled-diffusion upscale task: a Lanczos resize, then the artist's model redraws overlapping tiles.

Each tile is an ordinary img2img generation at a low strength, conditioned by a tile ControlNet on the
resized tile itself, with the artist's model, LoRAs and prompt; the tiles are blended with weights that
sum to one (``tiles.py``), modulo the size on wrapped axes. The generation itself is handed in as a
callable (``Engine.generate``): this task never imports another.

Imports only numpy at module level.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from . import tiles
from .request import GenerationRequest, GenerationResult, ProgressCallback, ProgressEvent
from .upscale import UpscaleRequest, tile_seed, upscale_recipe

GenerateFunction = Callable[..., GenerationResult]  # (request, *, on_progress, cancel_event, previews)


def native_tile_size(pipe: Any) -> int:
    """A loaded pipeline's own resolution (UNet sample size x the VAE's downsampling)."""
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


def upscale(
    request: UpscaleRequest,
    seed: int,
    *,
    generate: GenerateFunction,
    load_pipeline: Callable[[str], Any],
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
    previews: bool = True,
) -> GenerationResult:
    """Run the validated ``request`` with ``seed``; progress: tile i/n and step j/m.

    ``generate`` runs one tile's ``GenerationRequest``; ``load_pipeline(model)`` loads ``request.model`` and
    returns its pipeline (for ``tile_size`` 0: the model's native size).
    """
    rgb = np.ascontiguousarray(request.image[..., :3], dtype=np.float32)
    big = tiles.resize(rgb, request.factor, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
    height, width = big.shape[:2]
    tile_size = request.tile_size
    layout: list[tiles.Tile] = []
    generation_recipe: dict[str, Any] = {}
    if request.strength > 0:
        if not tile_size:
            tile_size = native_tile_size(load_pipeline(request.model))
        overlap = min(request.tile_overlap, tile_size - 8)
        layout = tiles.layout(height, width, tile_size, overlap, request.wrap_x, request.wrap_y)

        def draw(tile: tiles.Tile, pixels: np.ndarray) -> np.ndarray:
            generation = _tile_request(request, tile, pixels, seed, width, height)

            def tile_progress(event: ProgressEvent) -> None:
                if on_progress is not None:
                    on_progress(replace(event, part=tile.index + 1, parts=len(layout)))

            result = generate(generation, on_progress=tile_progress, cancel_event=cancel_event, previews=previews)
            generation_recipe.update(result.recipe)
            return result.image[: tile.height, : tile.width, :3]

        big = tiles.redraw(big, layout, draw, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = big
    recipe = upscale_recipe(request, seed, tile_size, len(layout), generation_recipe)
    ignored = []
    if request.reference is not None and not layout:
        ignored.append("The reference image has no effect at strength 0: the image is only resized (Lanczos).")
    return GenerationResult(image=rgba, seed=seed, recipe=recipe, ignored=ignored)


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
    if request.reference is not None:
        fields["reference"] = request.reference  # every tile the same picture: one embedding, reused
    return GenerationRequest(**fields)
