"""The reference image's IP-Adapter: kept in the cache's ``ip_adapter`` slot, loaded into the model's UNet
while requests ask for it, and the image embeddings each run passes to its pipeline.

What is loaded where:

* the adapter's image encoder (placed like the model) and image processor live in the cache's ``ip_adapter``
  slot (one kept; a new base model frees it with everything else); its weights live in the UNet only (read
  from the file again when it goes back in: no second copy in memory, 0.7 GB for SDXL's);
* the UNet holds the adapter (diffusers' ``load_ip_adapter`` on the loaded pipeline, shared by every
  pipeline built from it) while requests have a reference; a request without one (or at strength 0, or on a
  pipeline that takes none) unloads it first: every UNet call needs image embeddings while it is loaded.
  Loading and unloading never reload the base model; off after on gives the plain pixels exactly. Strength 0
  loads nothing (no encoder pass; with attention slicing every layer keeps its slices); an adapter loaded at
  scale 0 would give the same pixels (diffusers skips the image attention at 0, and the text attention is the
  default processor's code: bit-identical latents in fp32 and bf16, tests/engine/test_engine_reference.py).
* The engine's own attention processors go around diffusers' in one order (``attention_processors``): taken
  off -> ``load_ip_adapter`` -> ``set_ip_adapter_scale`` -> put back; taken off -> ``unload_ip_adapter`` ->
  exactly what was there before the load. A failed load is undone the same way (with the image encoder and
  image processor a failed ``load_ip_adapter`` leaves registered on the pipeline).
* The image encoder is never registered on the pipelines: the embeddings are computed here, once per image
  (cached by content, guidance and adapter; the strength is the processors' scale, not in them), with
  diffusers' own ``encode_image`` / ``prepare_ip_adapter_image_embeds`` and passed as
  ``ip_adapter_image_embeds``: SYNC's views and every tile of an upscale reuse them.

Under ``torch.compile`` the adapter goes onto the UNet inside the compiled wrapper (as LoRAs do) and runs
with a reference run eagerly (``generation.py``): the compiled graph is the plain one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import types
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import attention_processors, ip_adapters
from .base_model import LoadedModel, uncompiled_unet
from .errors import EngineError, check_cancel
from .model_cache import ModelCache, loading
from .request import ProgressCallback, ReferenceSpec

log = logging.getLogger(__name__)

SLOT = "ip_adapter"
EMBEDDINGS_KEPT = 8  # image embeddings kept per adapter (a few reference images switched between)
_COMPONENTS = ("image_encoder", "feature_extractor")  # what load_ip_adapter may register on the pipeline


@dataclass
class ReferenceAdapter:
    """An IP-Adapter in memory: its image encoder (placed) and processor, its embeddings; ``state``: its weights as
    read for the family check, until they are in the UNet."""

    files: ip_adapters.AdapterFiles
    state: dict[str, dict[str, Any]] | None
    image_encoder: Any
    image_processor: Any
    embeddings: OrderedDict[tuple[str, bool], list[Any]] = field(default_factory=OrderedDict)
    encodes: int = 0  # images run through the encoder (the rest came from ``embeddings``)


@dataclass
class ActiveReference:
    """The reference one run uses: the adapter in the UNet at ``strength``, and the picture."""

    adapter: ReferenceAdapter
    strength: float
    image: np.ndarray

    def recipe(self) -> dict[str, Any]:
        return {**self.adapter.files.recipe(), "strength": float(self.strength), "applied": True}


def recipe(spec: ReferenceSpec | None, active: ActiveReference | None) -> dict[str, Any] | None:
    """The recipe's ``reference``: the adapter, its revision and the strength; ``applied`` False where the run
    took none (strength 0, or a pipeline without IP-Adapter support: see ``GenerationResult.ignored``)."""
    if spec is None:
        return None
    if active is not None:
        return active.recipe()
    return spec.not_applied()


def prepare(
    cache: ModelCache,
    model: LoadedModel,
    spec: ReferenceSpec | None,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> ActiveReference | None:
    """Make the model's UNet hold exactly the adapter ``spec`` asks for (None, or strength 0: none), at its
    strength; returns what the run passes on, or None.

    Raises:
        ValueError: "" for a family without a default adapter.
        EngineError (and subclasses): the adapter cannot be found, read, or does not fit the model; the UNet
            is then as it was.
    """
    if spec is None or spec.strength == 0:
        unload(model)
        return None
    options = cache.placement.options
    files = ip_adapters.resolve(
        spec.model, model.family.name, allow_pickle=options.allow_pickle, cache_dir=options.cache_dir,
        offline=options.offline, read_cache_dirs=options.read_cache_dirs, on_progress=on_progress,
        cancel_event=cancel_event,
    )
    check_cancel(cancel_event)
    key = (*files.key, str(cache.placement.device), cache.placement.dtype_name)
    adapter = _adapter(cache, model, files, key)
    if model.reference_adapter != key:
        unload(model)
        try:
            _load_into(model, adapter)
        except BaseException:
            cache.evict(SLOT, key)
            raise
        model.reference_adapter = key
    with uncompiled_unet(model.base):
        model.base.set_ip_adapter_scale(float(spec.strength))  # no wrapper of ours on the processors now
    return ActiveReference(adapter, float(spec.strength), spec.image)


def unload(model: LoadedModel) -> None:
    """Take the adapter out of the UNet (if one is in): the processors and components exactly as before it."""
    if model.reference_adapter is None or "TXT2IMG" not in model.pipelines:
        model.reference_adapter = None
        return
    base = model.base
    before, components = model.before_reference
    model.reference_adapter = None  # whatever happens below, the next reference loads its adapter again
    try:
        attention_processors.take_off(base.unet)
        with uncompiled_unet(base):
            base.unload_ip_adapter()
    finally:
        attention_processors.install(base.unet, before)
        _restore_components(base, components)


def _adapter(cache: ModelCache, model: LoadedModel, files: ip_adapters.AdapterFiles, key: tuple[str, ...]) -> Any:
    """The cached adapter, else read and checked against the model (before anything on the UNet changes)."""
    cached = cache.get(SLOT, key)
    if cached is not None:
        return cached
    placement = cache.placement
    with loading(f"The IP-Adapter {files.name} (reference.model)", "its file may be corrupt or incomplete, or "
                 "it is not an IP-Adapter."):
        state = ip_adapters.read_state_dict(files)
        encoder_config = ip_adapters.encoder_config(files.encoder)
    unet = model.base.unet
    crossed = sum(attention_processors.is_cross_attention(n) for n in attention_processors.processors(unet))
    ip_adapters.check_fits(state, unet.config, crossed, encoder_config, model.family.name, files.name)

    def read() -> ReferenceAdapter:
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        options = placement.options
        with loading(f"The image encoder of the IP-Adapter {files.name} ({files.encoder})",
                     "its files may be corrupt or incomplete - download them again."):
            encoder = CLIPVisionModelWithProjection.from_pretrained(
                str(files.encoder), dtype=placement.dtype, local_files_only=True,
                use_safetensors=None if options.allow_pickle else True,
            )
            if (files.encoder / "preprocessor_config.json").is_file():
                processor = CLIPImageProcessor.from_pretrained(str(files.encoder), local_files_only=True)
            else:  # as diffusers makes it for h94's encoders, which ship none
                size = int(encoder.config.image_size)
                processor = CLIPImageProcessor(size=size, crop_size=size)
        encoder.eval()
        if not placement.offloads:
            encoder.to(placement.device)
        log.info("Loaded the IP-Adapter %s (encoder %s)", files.name, files.encoder)
        return ReferenceAdapter(files, state, encoder, processor)

    def drop(dropped: Any, entry: ReferenceAdapter) -> None:
        if model.reference_adapter == dropped:
            unload(model)

    return cache.load(SLOT, key, read, keep=1, on_drop=drop)


def _load_into(model: LoadedModel, adapter: ReferenceAdapter) -> None:
    """``load_ip_adapter`` on the loaded pipeline, with the engine's processors taken off and put back; undone
    completely when it fails."""
    base = model.base
    state, adapter.state = adapter.state, None
    if state is None:
        with loading(f"The IP-Adapter {adapter.files.name} (reference.model)", "its file may be corrupt or "
                     "incomplete, or it is not an IP-Adapter."):
            state = ip_adapters.read_state_dict(adapter.files)
    components = {name: getattr(base, name, None) for name in _COMPONENTS if hasattr(base, name)}
    before = attention_processors.take_off(base.unet)
    try:
        with uncompiled_unet(base), _quiet_encoder_warning():
            # The state dict, not the files: diffusers then never goes online; the encoder stays with us.
            base.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)
    except BaseException as error:
        attention_processors.take_off(base.unet)
        with uncompiled_unet(base):
            base.unload_ip_adapter()  # the image projection and every IP processor it made
        attention_processors.install(base.unet, before)
        _restore_components(base, components)
        if isinstance(error, (ValueError, RuntimeError, KeyError, TypeError)):
            raise EngineError(
                f"reference.model: the IP-Adapter {adapter.files.name} does not fit the model "
                f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''})."
            ) from error
        raise
    attention_processors.put_back(base.unet, before)
    _restore_components(base, components)
    model.before_reference = (before, components)


def _restore_components(pipe: Any, components: dict[str, Any]) -> None:
    """The pipeline's image encoder / feature extractor as they were (diffusers registers and clears them)."""
    for name, value in components.items():
        if getattr(pipe, name, None) is not value:
            pipe.register_modules(**{name: value})


@contextlib.contextmanager
def _quiet_encoder_warning() -> Iterator[None]:
    """diffusers warns that no image encoder was loaded when given a state dict: here that is the design."""
    logger = logging.getLogger("diffusers.loaders.ip_adapter")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def image_embeds(model: LoadedModel, active: ActiveReference, guidance: bool, device: Any, offloads: bool) -> list[Any]:
    """The reference's ``ip_adapter_image_embeds`` ([negative, positive] under guidance), computed once per image
    content and guidance with diffusers' own ``encode_image`` / ``prepare_ip_adapter_image_embeds``."""
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    adapter = active.adapter
    pixels = np.ascontiguousarray(active.image, dtype=np.float32)
    digest = hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
    key = (digest, guidance)
    cached = adapter.embeddings.get(key)
    if cached is not None:
        adapter.embeddings.move_to_end(key)
        return cached
    # 8-bit, as the encoder was trained on: the processor then resizes and normalises it as for any photo.
    picture = Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8))
    holder = types.SimpleNamespace(image_encoder=adapter.image_encoder, feature_extractor=adapter.image_processor,
                                   unet=attention_processors.unet_module(model.base.unet))
    holder.encode_image = types.MethodType(StableDiffusionPipeline.encode_image, holder)
    prepare_embeds = types.MethodType(StableDiffusionPipeline.prepare_ip_adapter_image_embeds, holder)
    if offloads:
        adapter.image_encoder.to(device)
    try:
        with torch.no_grad():
            embeds = prepare_embeds([picture], None, device, 1, guidance)
    finally:
        if offloads:
            adapter.image_encoder.to("cpu")
    adapter.encodes += 1
    adapter.embeddings[key] = embeds
    while len(adapter.embeddings) > EMBEDDINGS_KEPT:
        adapter.embeddings.popitem(last=False)
    return embeds
