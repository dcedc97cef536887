"""The ControlNet a request runs with, kept in the cache's ``controlnet`` slot beside the base model.

Up to ``CONTROLNET_CACHE_SIZE`` ControlNets stay loaded (e.g. one depth, one normal); one leaving the
cache takes the pipelines built with it along. Reading and the family check are ``controlnets.py``'s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from typing import Any

from . import controlnets
from .base_model import LoadedModel
from .model_cache import ModelCache, loading
from .request import GenerationRequest, ProgressCallback

log = logging.getLogger(__name__)

SLOT = "controlnet"
CONTROLNET_CACHE_SIZE = 2  # ControlNets kept beside the loaded model (e.g. one depth, one normal)


def controlnet_for(
    cache: ModelCache,
    model: LoadedModel,
    request: GenerationRequest,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> tuple[Hashable | None, Any, str]:
    """The ControlNet to run (its cache key and the model, or None, None) and the ``control_model`` the
    recipe records.

    ``control_strength == 0`` runs the plain pipeline, no ControlNet: exactly the pixels of no
    control. An SD 2 depth model reads the depth itself: no ControlNet, recipe ``control_model`` "".

    Raises:
        ValueError: no ``control_model`` and no default for the model's family.
        EngineError: it cannot be loaded, or it is made for another family.
    """
    if request.control == "NONE" or model.family.depth:
        return None, None, ""
    if request.control_strength == 0:
        try:
            return None, None, controlnets.resolve_source(request.control_model, model.family, request.control)
        except ValueError:
            return None, None, ""
    name = controlnets.resolve_source(request.control_model, model.family, request.control)
    key, controlnet = _load(cache, model, name, on_progress, cancel_event)
    return key, controlnet, name


def _load(
    cache: ModelCache,
    model: LoadedModel,
    name: str,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> tuple[Hashable, Any]:
    """Load (or reuse) the ControlNet ``name`` beside ``model``; return its cache key and the ControlNet."""
    placement = cache.placement
    options = placement.options
    source = controlnets.classify(name, allow_pickle=options.allow_pickle)
    key = placement.cache_key(source)

    def read() -> Any:
        prefer_variant = "fp16" if placement.dtype_name in ("float16", "bfloat16") else None
        with loading(f"The ControlNet {name} (control_model)", "its files may be corrupt or incomplete, or it is "
                     "not a ControlNet."):
            controlnet = controlnets.load(
                source,
                dtype=placement.dtype,
                cache_dir=options.cache_dir,
                offline=options.offline,
                allow_pickle=options.allow_pickle,
                prefer_variant=prefer_variant,
                read_cache_dirs=options.read_cache_dirs,
                on_progress=on_progress,
                cancel_event=cancel_event,
            )
        controlnets.check_family(controlnet, model.base.unet, model.family, name)
        placement.place_beside(controlnet, model.weight_bytes)
        log.info("Loaded the ControlNet %s beside %s", source.location, model.source.location)
        return controlnet

    def drop(dropped: Hashable, controlnet: Any) -> None:
        model.drop_pipelines_with(dropped)

    return key, cache.load(SLOT, key, read, keep=CONTROLNET_CACHE_SIZE, on_drop=drop)
