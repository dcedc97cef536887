"""Scene settings and preferences -> engine request and options."""

from __future__ import annotations

import dataclasses

import bpy
import numpy as np

from ..engine import EngineOptions, GenerationRequest
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
    )


def resolve_model_path(model: str) -> str:
    """Blender-relative paths (``//models/x``) become absolute; repo ids pass through."""
    model = model.strip()
    if model.startswith("//"):
        return bpy.path.abspath(model)
    return model


def validate_settings(request: GenerationRequest) -> None:
    """Every field the engine checks, before anything is captured or created.

    The init image does not exist yet (a render may be needed to make it), so
    an image-to-image request is checked with a blank image of the right size.
    """
    blank = None
    if request.mode == "IMG2IMG":
        blank = np.zeros((request.height, request.width, 3), dtype=np.float32)
    dataclasses.replace(request, init_image=blank).validate()


def options_from_preferences(context: bpy.types.Context) -> EngineOptions:
    prefs = get_preferences(context)
    return EngineOptions(
        device=prefs.device,
        precision=prefs.precision,
        cache_dir=prefs.resolved_model_cache_dir(),
        offline=not getattr(bpy.app, "online_access", True),
        allow_pickle=prefs.allow_pickle,
        attention_slicing=prefs.attention_slicing,
        cpu_offload=prefs.cpu_offload,
        torch_compile=prefs.torch_compile,
        compile_cache_dir=compile_cache_dir(),
    )
