"""The x4-upscaler task: ``stabilityai/stable-diffusion-x4-upscaler`` (``StableDiffusionUpscalePipeline``), tiled.

The pipeline allocates its latents at the *input* size and decodes four times
that, so one untiled run on a 1024² source needs a 4096² decode at once. Here the
source is cut into overlapping tiles of the model's native input size (128 px for
the real model, 512 px out), each tile is upscaled on its own with a seed derived
from the run's seed (``upscale.tile_seed``), and the 4x tiles are blended with the
weights and the wrap rule of the tiled-diffusion path (``tiles.py``): on a wrapped
axis the tiles are placed modulo the size, so a seamless texture stays seamless.
x2 is the x4 result averaged over 2x2 pixel blocks (exact, and wrap-safe).

The upscaler is its own model in its own slot of the model cache (``SLOT``): the
artist's model stays loaded beside it. A task module: it never imports another.
Imports only numpy at module level (the add-on reads the defaults); torch loads with the engine.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import sources, tiles
from .errors import EngineError, check_cancel
from .prompt_embeddings import PromptCache
from .request import GenerationResult, ProgressCallback, ProgressEvent
from .upscale import DEFAULT_NOISE_LEVEL, DEFAULT_UPSCALER  # noqa: F401 - the add-on reads the defaults here
from .upscale import MAX_NOISE_LEVEL, X4_FACTOR, UpscaleRequest, tile_seed, upscale_recipe

if TYPE_CHECKING:
    from .model_cache import ModelCache, ModelFiles

log = logging.getLogger(__name__)

SLOT = "upscaler"


@dataclass
class LoadedUpscaler:
    """The dedicated x4 upscaler in memory, in the cache's ``upscaler`` slot beside the artist's model."""

    key: tuple[str, str, str, str]
    pipe: Any
    where: ModelFiles
    scheduler_config: dict[str, Any]  # as shipped: every tile's scheduler is made from it
    prompt_cache: PromptCache = field(default_factory=PromptCache)


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


def upscale(
    cache: ModelCache,
    request: UpscaleRequest,
    seed: int,
    *,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> GenerationResult:
    """Run the validated ``request`` (``method`` X4_UPSCALER) with ``seed``; progress: tile i/n and step j/m."""
    from . import devices

    with devices.oom_as_engine_error(cache.placement.device):
        big, fields = run(cache, request, seed, on_progress=on_progress, cancel_event=cancel_event)
    height, width = big.shape[:2]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = big
    ran_in = {"device": cache.placement.device.type, "dtype": cache.placement.dtype_name}
    recipe = upscale_recipe(request, seed, fields["tile_size"], fields["tiles"], ran_in)
    recipe["upscale"].update(
        method="X4_UPSCALER", control="NONE", control_model="", upscaler_model=fields["upscaler_model"],
        noise_level=fields["noise_level"], upscaler_files=fields["model_files"],
        upscaler_revision=fields.get("model_revision", ""),
    )
    ignored = []
    if request.control != "NONE" or request.loras:
        ignored.append("The tile ControlNet and LoRAs do not apply to the x4 upscaler: it is its own model and "
                       "paints every tile from the source itself (Noise Level sets how freely).")
        recipe["upscale"]["not_applied"] = ignored[0]  # the recipe says so too
    if request.reference is not None:
        note = ("The reference image does not apply to the x4 upscaler: diffusers' upscaler pipeline takes no "
                "IP-Adapter; use the Tiled Diffusion method for tiles that follow the reference.")
        ignored.append(note)
        recipe["upscale"]["reference"] = {**request.reference.not_applied(), "not_applied": note}
    return GenerationResult(image=rgba, seed=seed, recipe=recipe, timings={"upscale": fields["seconds"]},
                            ignored=ignored)


def run(
    cache: ModelCache,
    request: UpscaleRequest,
    seed: int,
    *,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Upscale ``request.image`` x4 tile by tile (x2: then halved). Returns the RGB image and the recipe fields."""
    source = request.upscaler_model or DEFAULT_UPSCALER
    upscaler = load_upscaler(cache, source, on_progress=on_progress, cancel_event=cancel_event)
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
        upscaled = run_tile(
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


def load_upscaler(
    cache: ModelCache,
    model: str,
    *,
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
) -> LoadedUpscaler:
    """The x4 upscaler ``model`` (a ``StableDiffusionUpscalePipeline``: repo id or diffusers folder), from the
    cache's ``upscaler`` slot, else loaded (or downloaded) into it."""
    from .model_cache import loading, pipeline_bytes, read_pipeline
    from .prompt_embeddings import remember_prompt_embeddings

    placement = cache.placement
    source = sources.classify(model, allow_pickle=placement.options.allow_pickle)
    key = placement.cache_key(source)

    def read() -> LoadedUpscaler:
        if source.kind == "SINGLE_FILE":
            raise EngineError(
                f"{source.location} is a single file; the x4 upscaler is loaded from its diffusers folder or "
                "repo id (stabilityai/stable-diffusion-x4-upscaler)."
            )
        with loading(f"The upscaler {source.location}", "its files may be incomplete - download it again."):
            pipe, where = read_pipeline(
                source, placement, on_progress, cancel_event, sources.UPSCALER_PIPELINES,
                before_load=lambda folder: cache.make_room(pipeline_bytes(folder, source.location, placement.dtype),
                                                           in_use=(SLOT,)),
            )
        # Not packed (pack_weights): at its 128x128 latents a tile measured no faster (27.7 s vs 26.2 s, 2 steps,
        # x4-upscaler-sized), and a packed copy would cost ~1 GB more.
        placement.place(pipe, pack_weights=False)
        upscaler = LoadedUpscaler(key, pipe, where, dict(pipe.scheduler.config))
        remember_prompt_embeddings(pipe, upscaler.prompt_cache)
        log.info("Loaded the upscaler %s on %s as %s", source.location, placement.device, placement.dtype)
        return upscaler

    return cache.load(SLOT, key, read)


def run_tile(
    upscaler: LoadedUpscaler,
    pixels: np.ndarray,
    *,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance_scale: float,
    scheduler: str,
    noise_level: int,
    seed: int,
    wrap: str,
    on_step: Callable[[int], None] | None,
    cancel_event: threading.Event | None,
) -> np.ndarray:
    """One tile through the x4 upscaler: float32 (h, w, 3) in 0..1 -> (4h, 4w, 3). ``wrap``: the seamless axes
    the tile wraps around itself (it spans them whole). Cancel is checked after every step."""
    import torch

    from . import devices
    from .schedulers import make_scheduler
    from .tiling import seamless

    def on_step_end(step: int, timestep: Any, latents: Any) -> None:
        check_cancel(cancel_event)
        if on_step is not None:
            on_step(step + 1)

    pipe = upscaler.pipe
    check_cancel(cancel_event)
    pipe.scheduler = make_scheduler(scheduler, upscaler.scheduler_config, steps)
    unet = pipe.unet
    if wrap != "NONE" and hasattr(unet, "_orig_mod"):
        pipe.unet = unet._orig_mod  # compiled graphs know no circular padding
    try:
        with seamless((pipe.unet, pipe.vae), wrap), torch.inference_mode():
            images = pipe(
                prompt=prompt,
                negative_prompt=negative_prompt or None,
                image=pixels[None],
                num_inference_steps=steps,
                guidance_scale=float(guidance_scale),
                noise_level=int(noise_level),
                generator=devices.seed_generator(seed),
                output_type="np",
                callback=on_step_end,
                callback_steps=1,
            ).images
    finally:
        pipe.unet = unet
    check_cancel(cancel_event)
    return np.ascontiguousarray(images[0], dtype=np.float32)


def _tile_progress(
    on_progress: ProgressCallback | None, part: int, parts: int, steps: int
) -> Callable[[int], None] | None:
    if on_progress is None:
        return None

    def on_step(done: int) -> None:
        on_progress(ProgressEvent(done, steps, None, part=part, parts=parts))

    return on_step
