"""Latent Textures' diffusion engine: plain Python + torch/diffusers, never bpy.

Importing this package costs only numpy: the request/result types and errors
are here; torch, diffusers and transformers load on the first ``get_engine()``.

    from .engine import EngineOptions, GenerationRequest, get_engine
    result = get_engine(EngineOptions()).generate(GenerationRequest(prompt="moss", model="org/name"))
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .errors import (
    EngineError,
    GenerationCancelled,
    ModelNotFoundError,
    OutOfMemoryError,
    UnsafeModelFormatError,
    ViewsDoNotFitError,
)
from .request import (
    CONTROLS,
    MAX_CONTROL_STRENGTH,
    MAX_LORA_WEIGHT,
    MAX_MASK_BLUR,
    MAX_SEED,
    MAX_SIZE,
    MAX_STEPS,
    MIN_SIZE,
    MODES,
    SCHEDULERS,
    SEAMLESS_AXES,
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    LoadedModelInfo,
    LoraSpec,
    ProgressEvent,
    ReferenceSpec,
)
from .material_maps_request import MAP_KINDS, MaterialMapsRequest, MaterialMapsResult
from .upscale import UpscaleRequest

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "CONTROLS",
    "MAX_CONTROL_STRENGTH",
    "MAX_LORA_WEIGHT",
    "MAX_MASK_BLUR",
    "MAX_SEED",
    "MAX_SIZE",
    "MAX_STEPS",
    "MIN_SIZE",
    "MODES",
    "SCHEDULERS",
    "SEAMLESS_AXES",
    "Engine",
    "EngineError",
    "EngineOptions",
    "GenerationCancelled",
    "GenerationRequest",
    "GenerationResult",
    "LoadedModelInfo",
    "LoraSpec",
    "MAP_KINDS",
    "MaterialMapsRequest",
    "MaterialMapsResult",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "ProgressEvent",
    "ReferenceSpec",
    "UnsafeModelFormatError",
    "ViewsDoNotFitError",
    "UpscaleRequest",
    "__version__",
    "get_engine",
    "list_local_models",
    "loaded_engine",
]

_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine(options: EngineOptions | None = None) -> Engine:
    """The process-wide engine for ``options``; a different ``options`` frees the old one and makes a new one."""
    from .engine import Engine

    global _engine
    options = options if options is not None else EngineOptions()
    with _engine_lock:
        if _engine is None or _engine.options != options:
            if _engine is not None:
                _engine.free()
                _engine = None
            _engine = Engine(options)
        return _engine


def loaded_engine() -> Engine | None:
    """The process-wide engine if one was made (``get_engine``), else None; never creates one."""
    return _engine


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "__version__":
        from ._version import read_version

        return read_version()
    if name == "list_local_models":
        from .models import list_local_models

        return list_local_models
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
