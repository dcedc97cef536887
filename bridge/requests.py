"""Scene settings and preferences -> engine request and options."""

from __future__ import annotations

import dataclasses
import os

import bpy
import numpy as np

from ..engine import EngineOptions, GenerationRequest, LoraSpec, UpscaleRequest, loaded_engine
from ..preferences import compile_cache_dir, get_preferences


def request_from_settings(settings, init_image: np.ndarray | None = None) -> GenerationRequest:
    return GenerationRequest(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        model=resolve_model_path(settings.model),
        mode=settings.mode,
        init_image=init_image,
        strength=settings.strength,
        width=settings.width,
        height=settings.height,
        steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        scheduler=settings.scheduler,
        seed=None if settings.use_random_seed else settings.seed,
        seamless=settings.seamless,
        mask_blur=settings.mask_blur,
        control=settings.control,
        control_model=resolve_model_path(settings.control_model),
        control_strength=settings.control_strength,
        loras=loras_from_settings(settings),
    )


def loras_from_settings(settings) -> tuple[LoraSpec, ...]:
    """The enabled LoRAs of the panel's list, in order (rows left without a source are skipped)."""
    return tuple(LoraSpec(resolve_model_path(lora.source), lora.weight)
                 for lora in settings.loras if lora.enabled and lora.source.strip())


def resolve_model_path(model: str) -> str:
    """Blender-relative paths (``//models/x``) become absolute; repo ids pass through."""
    model = model.strip()
    if model.startswith("//"):
        return bpy.path.abspath(model)
    return model


def model_in_memory(model: str):
    """The engine's ``loaded_model()`` info when the Model setting ``model`` names the model in memory, else None
    (loads and reads nothing)."""
    location = resolve_model_path(model)
    engine = loaded_engine()
    info = engine.loaded_model() if engine is not None else None
    if info is not None and info.source in (location, os.path.abspath(os.path.expanduser(location))):
        return info
    return None


def validate_settings(request: GenerationRequest) -> None:
    """Every field the engine checks, before anything is captured or created.

    The init, mask and control images may not exist yet (a render may be needed
    to make them): those still missing are checked as stand-ins of the right
    size (a black source, a mask that repaints everything, a black control image).
    """
    size = (request.height, request.width)
    images = {}
    if request.mode in ("IMG2IMG", "INPAINT") and request.init_image is None:
        images["init_image"] = np.zeros((*size, 3), dtype=np.float32)
    if request.mode == "INPAINT" and request.mask_image is None:
        images["mask_image"] = np.ones(size, dtype=np.float32)
    if request.control != "NONE" and request.control_image is None:
        images["control_image"] = np.zeros((*size, 3), dtype=np.float32)
    dataclasses.replace(request, **images).validate()


def options_from_preferences(context: bpy.types.Context) -> EngineOptions:
    prefs = get_preferences(context)
    return EngineOptions(
        device=prefs.device,
        precision=prefs.precision,
        cache_dir=prefs.resolved_download_dir(),
        read_cache_dirs=tuple(folder for folder, _label in prefs.hub_caches()),
        offline=not getattr(bpy.app, "online_access", True),
        allow_pickle=prefs.allow_pickle,
        attention_slicing=prefs.attention_slicing,
        cpu_offload=prefs.cpu_offload,
        torch_compile=prefs.torch_compile,
        compile_cache_dir=compile_cache_dir(),
    )


def upscale_after_generate(settings, request: GenerationRequest, options: EngineOptions) -> UpscaleRequest | None:
    """Upscale After Generate: the upscale to run on the result (its image and seed filled in then), or None.

    Checked now, before anything runs (factor too large for memory -> ValueError naming the largest that fits;
    a model it reads that cannot be had, e.g. the tile ControlNet not downloaded while offline -> ValueError).
    """
    if settings.upscale_after == "NONE":
        return None
    blank = np.broadcast_to(np.zeros(1, dtype=np.float32), (request.height, request.width, 3))
    upscale = UpscaleRequest(
        image=blank,
        model=request.model,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        factor=int(settings.upscale_after),
        strength=settings.upscale_strength,
        steps=request.steps,
        guidance_scale=request.guidance_scale,
        scheduler=request.scheduler,
        seamless=request.seamless,
        control="TILE" if settings.upscale_strength > 0 and settings.upscale_method == "TILED_DIFFUSION" else "NONE",
        control_model=resolve_model_path(settings.upscale_control_model),
        method=settings.upscale_method,
        upscaler_model=resolve_model_path(settings.upscale_x4_model),
        noise_level=settings.upscale_noise_level,
        loras=request.loras,
    )
    # Tiled Diffusion: every tile follows the generation's reference; the x4 upscaler says it takes none
    upscale.reference = request.reference
    upscale.validate()
    check_upscale_models(upscale, options)
    return upscale


def check_upscale_models(upscale: UpscaleRequest, options: EngineOptions) -> None:
    """The models ``upscale`` reads can be had (read from the disk, nothing loaded), else ValueError saying which."""
    from ..engine import EngineError
    from ..engine.upscale_models import check_available

    try:
        check_available(upscale, options)
    except EngineError as error:
        raise ValueError(str(error)) from None
