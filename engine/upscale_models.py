"""Before an upscale (or a generation with a reference image) runs: can the models it reads be had? Answered
from the disk alone (configs, the caches).

Upscale After Generate runs its upscale after the generation: a tile ControlNet or x4 upscaler that cannot
be read offline would only show once the generation is done. ``check_available`` lets the caller refuse
first. It loads nothing and asks nothing of the hub; what it cannot tell before loading (the family of a
single-file checkpoint, or of a repo id not downloaded yet while downloads are allowed) is left to the run.

Imports only the standard library at module level (``huggingface_hub`` when a repo id is looked up).
"""

from __future__ import annotations

from typing import Callable

from . import families, hub, sources
from .errors import ModelNotFoundError
from .request import EngineOptions, ReferenceSpec
from .upscale import DEFAULT_UPSCALER, UpscaleRequest


def check_available(request: UpscaleRequest, options: EngineOptions) -> None:
    """Raise ``ModelNotFoundError`` (or ``ValueError`` for a family without a default tile ControlNet) naming the
    model ``request`` reads that cannot be had: a path that is not there, a repo id not cached while offline."""
    if request.method == "X4_UPSCALER":
        _check(request.upscaler_model.strip() or DEFAULT_UPSCALER, "The x4 upscaler", options, sources.classify)
        return
    if request.reference is not None and request.strength > 0:
        check_reference_available(request.reference, request.model, options)
    if request.strength <= 0 or request.control == "NONE":
        return  # a plain resize, or img2img tiles with the model the generation itself reads
    from . import controlnets

    name = request.control_model.strip()
    if not name:
        family = model_family(request.model, options)
        if family is None:
            return
        name = controlnets.resolve_source("", family, "TILE")  # a family without a default: ValueError
    _check(name, "The tile ControlNet", options, controlnets.classify)


def check_reference_available(reference: ReferenceSpec | None, model: str, options: EngineOptions) -> None:
    """Before a run with ``reference`` on ``model``: can its IP-Adapter and image encoder be had (a file with its
    encoder, or cached while offline)? From the disk alone; "" is checked where ``model``'s family can be read.

    Raises:
        ModelNotFoundError, UnsafeModelFormatError: naming the adapter; ValueError: "" for an SD 2.x model.
    """
    if reference is None or reference.strength == 0:
        return
    check_adapter_available(reference.model, model, options)


def check_adapter_available(adapter: str, model: str, options: EngineOptions) -> None:
    """The IP-Adapter ``adapter`` ("" = the default of ``model``'s family) and its image encoder can be had: from
    the disk alone, nothing loaded (also for a run whose reference picture does not exist yet: SEQUENTIAL's
    view 1). Raises as ``check_reference_available``."""
    from . import ip_adapters

    family = model_family(model, options)
    ip_adapters.check_available(adapter, family.name if family is not None else None,
                                allow_pickle=options.allow_pickle, cache_dir=options.cache_dir, offline=options.offline,
                                read_cache_dirs=options.read_cache_dirs)


def model_family(model: str, options: EngineOptions) -> families.ModelFamily | None:
    """The family of ``model`` from its config files on disk; None when they are not there yet (or a single file)."""
    source = sources.classify(model, allow_pickle=options.allow_pickle)
    if source.kind == "FOLDER":
        return families.family_from_folder(source.location)
    if source.kind == "HUB":
        for cache in hub.lookup_caches(options.cache_dir, options.read_cache_dirs):
            folder = hub.cached_snapshot(source.location, cache)
            family = families.family_from_folder(str(folder)) if folder is not None else None
            if family is not None:
                return family
    return None


def _check(name: str, what: str, options: EngineOptions, classify: Callable[..., sources.ModelSource]) -> None:
    source = classify(name, allow_pickle=options.allow_pickle)  # a path that is not a model: ModelNotFoundError
    if source.kind != "HUB" or not hub.hub_offline(options.offline):
        return
    caches = hub.lookup_caches(options.cache_dir, options.read_cache_dirs)
    if any(hub.cached_snapshot(source.location, cache) is not None for cache in caches):
        return
    raise ModelNotFoundError(
        f"{what} {source.location} is not in the model caches ({', '.join(caches)}) and "
        f"{hub.offline_reason(options.offline)}: go online once so it can be downloaded, or choose one on disk."
    )

