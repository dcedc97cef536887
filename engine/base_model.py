"""The artist's model in the cache's ``model`` slot: one set of weights shared by a pipeline per task
(``pipelines.py``), with its cached prompt embeddings, LoRA adapters and the VAE's fp32 fallback.

One base model is in memory at a time: loading another frees the whole cache first (its ControlNets,
the upscaler and the preview decoders with it), so the old weights are gone before the new are read.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import pipelines, sources
from .families import ModelFamily, detect_family
from .loras import LoraFile
from .model_cache import ModelCache, ModelFiles, loading, read_pipeline
from .placement import Placement
from .prompt_embeddings import PromptCache, remember_prompt_embeddings
from .request import LoadedModelInfo, ProgressCallback

log = logging.getLogger(__name__)

SLOT = "model"


@dataclass
class LoadedModel:
    """The model in memory: one set of weights shared by a pipeline per task."""

    key: tuple[str, str, str, str]
    source: sources.ModelSource
    family: ModelFamily
    where: ModelFiles
    scheduler_config: dict[str, Any]
    pipelines: dict[Any, Any] = field(default_factory=dict)  # task, or (task, ControlNet cache key) -> pipeline
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    vae_fp32: bool = False  # a half-precision decode overflowed: this model's VAE decodes in fp32
    weight_bytes: int = 0  # what the weights take on the device (VAE tiling AUTO)
    # (LoRA file path, its sha256) -> (adapter name, the file), oldest first (lora_adapters.py)
    lora_adapters: dict[tuple[str, str], tuple[str, LoraFile]] = field(default_factory=dict)
    lora_state: tuple[tuple[str, float], ...] = ()  # the adapters and weights now active
    adapters_made: int = 0
    reference_adapter: Any = None  # the IP-Adapter's cache key while the UNet holds it (reference_slot.py)
    # what the UNet had before it: (its attention processors by name, the pipeline's image encoder/processor)
    before_reference: tuple[dict[str, Any], dict[str, Any]] = ({}, {})

    @property
    def base(self) -> Any:
        """The loaded pipeline; every other pipeline shares its components."""
        return self.pipelines["TXT2IMG"]

    def drop_pipelines_with(self, controlnet_key: Hashable) -> None:
        """Forget the pipelines built with that ControlNet (it is leaving the cache)."""
        for key in [k for k in self.pipelines if isinstance(k, tuple) and k[1] == controlnet_key]:
            del self.pipelines[key]


def load(
    cache: ModelCache,
    model: str,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> LoadedModel:
    """``model`` from the cache, else read (downloaded), placed and cached; every other model is freed first."""
    placement = cache.placement
    source = sources.classify(model, allow_pickle=placement.options.allow_pickle)
    key = placement.cache_key(source)
    loaded = cache.get(SLOT, key)
    if loaded is not None:
        return loaded
    cache.free()  # one model in memory: drop the old one (and all beside it) before reading the new one

    def read() -> LoadedModel:
        with loading(f"The model {source.location}", "its files may be corrupt, incomplete or not a Stable "
                     "Diffusion model - download or convert it again."):
            pipe, where = read_pipeline(source, placement, on_progress, cancel_event)
        family = detect_family(pipe.unet.config, pipe.scheduler.config)
        placement.place(pipe)
        loaded = LoadedModel(
            key=key,
            source=source,
            family=family,
            where=where,
            scheduler_config=dict(pipe.scheduler.config),
            pipelines={"TXT2IMG": pipe},
            weight_bytes=placement.resident_bytes(pipe),
        )
        remember_prompt_embeddings(pipe, loaded.prompt_cache)
        log.info("Loaded %s (%s) on %s as %s", source.location, family.name, placement.device, placement.dtype)
        return loaded

    return cache.load(SLOT, key, read, on_drop=_release)


def _release(key: Hashable, model: LoadedModel) -> None:
    """Let go of every pipeline and adapter, so the memory goes back even where a reference to ``model`` lingers."""
    model.pipelines.clear()
    model.lora_adapters.clear()
    model.reference_adapter = None


@contextlib.contextmanager
def uncompiled_unet(pipe: Any) -> Iterator[None]:
    """Let diffusers' adapter calls (LoRAs, IP-Adapters) reach the UNet itself while the pipeline holds its
    compiled wrapper (not a ``ModelMixin``: they raise there, or do nothing)."""
    unet = pipe.unet
    original = getattr(unet, "_orig_mod", None)
    if original is None:
        yield
        return
    pipe.unet = original
    try:
        yield
    finally:
        pipe.unet = unet


def info(model: LoadedModel, placement: Placement) -> LoadedModelInfo:
    """What ``model`` is and how it runs (``Engine.loaded_model``)."""
    return LoadedModelInfo(
        source=model.source.location,
        family=model.family.name,
        device=placement.device.type,
        dtype=placement.dtype_name,
        files=model.where.files,
        origin=model.where.origin,
        cache_dir=model.where.cache_dir,
        few_step=model.family.few_step,
        negative_prompt=not pipelines.runs_lcm(model.base),
        prediction_type=model.family.prediction_type,
    )


def pipeline_for(
    model: LoadedModel,
    placement: Placement,
    task: str,
    controlnet_key: Hashable | None = None,
    controlnet: Any = None,
) -> Any:
    """The pipeline for ``task`` (``pipelines.TASKS``) with ``controlnet`` (cached under ``controlnet_key``);
    built on the loaded model's components (no second copy), then kept."""
    key: Any = task if controlnet_key is None else (task, controlnet_key)
    pipe = model.pipelines.get(key)
    if pipe is None:
        pipe = pipelines.build(model.base, model.family, task, controlnet)
        if pipe is not model.base:
            if placement.offloads:
                pipe.enable_model_cpu_offload(device=placement.device)
            remember_prompt_embeddings(pipe, model.prompt_cache)
        model.pipelines[key] = pipe
    return pipe
