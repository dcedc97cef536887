"""The engine: one cached model; txt2img, img2img and inpainting on it, with ControlNets and LoRAs
beside it; progress, cancel, seamless output.

Imports torch and diffusers at the top; the package imports this module only
when an engine is first asked for (``get_engine``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import compiling, controlnets, devices, inpaint, loras, packed_weights, pipelines, revisions, sources
from ._version import read_version
from .errors import EngineError, GenerationCancelled
from .families import ModelFamily, detect_family
from .files import variant_for
from .preview import latents_to_rgb
from .request import (
    MAX_SEED,
    EngineOptions,
    GenerationRequest,
    LoraSpec,
    GenerationResult,
    LoadedModelInfo,
    ProgressEvent,
)
from .schedulers import make_scheduler
from .tiling import decode_wrapped, seamless

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]
# VAE tiling AUTO: tile when an untiled decode would take more than this share of the memory the
# device has beside the model's weights. The decode's peak, measured for the SD/SDXL VAE on the CPU
# in fp32 (bench/): +0.78 GB at 512x512, +3.0 GB at 1024x1024, i.e. ~3 KB per output pixel.
VAE_DECODE_BYTES_PER_PIXEL_FP32 = 3072
VAE_TILING_MEMORY_SHARE = 0.5
VAE_TILING_AUTO_PIXELS = 1024 * 1024  # where the device's memory is unknown: tile above this many pixels
# Convolution/linear weights are packed (a second copy, packed_weights.py) only while all weights, packed copies
# included, take at most this share of the RAM: the rest is for activations, Blender and the system.
PACKED_WEIGHTS_MEMORY_SHARE = 0.5
_COMPILER_MODULES = ("torch._dynamo", "torch._inductor")  # where torch.compile's errors come from
PROMPT_CACHE_SIZE = 4  # prompts whose text embeddings are kept per loaded model
CONTROLNET_CACHE_SIZE = 2  # ControlNets kept beside the loaded model (e.g. one depth, one normal)
LORA_CACHE_SIZE = 8  # LoRA adapters kept loaded into the model (the ones not asked for are disabled)
_EMBEDDING_ARGUMENTS = (
    "prompt_embeds",
    "negative_prompt_embeds",
    "pooled_prompt_embeds",
    "negative_pooled_prompt_embeds",
    "lora_scale",
)


@dataclass
class _LoadedModel:
    """The model in memory: one set of weights shared by a pipeline per mode."""

    key: tuple[str, str, str, str]
    source: sources.ModelSource
    family: ModelFamily
    where: ModelFiles
    scheduler_config: dict[str, Any]
    pipelines: dict[str, Any] = field(default_factory=dict)
    # encode_prompt's arguments -> its outputs, newest last (see Engine._cache_prompt_embeddings)
    prompt_cache: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)
    vae_fp32: bool = False  # a half-precision decode overflowed: this model's VAE decodes in fp32
    weight_bytes: int = 0  # what the weights take on the device (VAE tiling AUTO)
    # (kind, location, device, dtype) -> ControlNetModel, oldest first; pipelines keyed by (task, that key)
    controlnets: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)
    # LoRA file path -> (adapter name, recipe entry without weight), oldest first
    lora_adapters: dict[str, tuple[str, loras.LoraFile]] = field(default_factory=dict)
    lora_state: tuple[tuple[str, float], ...] = ()  # the adapters and weights now active
    adapters_made: int = 0

    @property
    def base(self) -> Any:
        """The loaded pipeline; every other pipeline shares its components."""
        return self.pipelines["TXT2IMG"]


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's weights were read from (``LoadedModelInfo.files/origin/cache_dir``, the recipe)."""

    files: str
    origin: str
    cache_dir: str | None = None
    revision: str | None = None  # the hub commit or the checkpoint's sha256 (revisions.py)

    def recipe_fields(self) -> dict[str, Any]:
        fields = {"model_files": self.files, "model_origin": self.origin, "model_cache": self.cache_dir or ""}
        return fields | ({"model_revision": self.revision} if self.revision else {})


@dataclass
class _LoadedUpscaler:
    """The dedicated x4 upscaler in memory (``upscale_x4.py``), in a slot of its own beside the model."""

    key: tuple[str, str, str, str]
    pipe: Any
    where: ModelFiles
    scheduler_config: dict[str, Any]  # as shipped: every tile's scheduler is made from it


class _RunClock:
    """Where one generation's time goes (``GenerationResult.timings``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.load = 0.0
        self.encode_prompt = 0.0
        self.first_unet_call: float | None = None
        self.step_ends: list[float] = []
        self.decode = 0.0

    def on_unet_call(self, module: Any, args: Any) -> None:
        if self.first_unet_call is None:
            self.first_unet_call = time.perf_counter()

    def timings(self) -> dict[str, float]:
        out = {"load": self.load, "encode_prompt": self.encode_prompt, "decode": self.decode}
        if self.first_unet_call is not None:
            setup = self.first_unet_call - self.start - self.load - self.encode_prompt
            out["before_first_step"] = max(setup, 0.0)
            if self.step_ends:
                out["first_step"] = self.step_ends[0] - self.first_unet_call
                out["denoise"] = self.step_ends[-1] - self.first_unet_call
        out["total"] = time.perf_counter() - self.start
        return {key: round(value, 6) for key, value in out.items()}


def vae_tiling_needed(pixels: int, itemsize: int, total_bytes: int | None, weight_bytes: int) -> bool:
    """Would an untiled VAE decode of ``pixels`` output pixels need tiling to fit (VAE tiling ``AUTO``)?

    Args:
        pixels: width x height of the image.
        itemsize: bytes per value of the VAE's dtype (4 for fp32, 2 for fp16/bf16).
        total_bytes: the device's memory (``devices.total_memory``), None if unknown.
        weight_bytes: what the model's weights take on that device.
    """
    if total_bytes is None:
        return pixels > VAE_TILING_AUTO_PIXELS
    need = pixels * VAE_DECODE_BYTES_PER_PIXEL_FP32 * itemsize / 4
    return need > VAE_TILING_MEMORY_SHARE * max(total_bytes - weight_bytes, 0)


@contextlib.contextmanager
def _loading(what: str, advice: str) -> Iterator[None]:
    """A loader's error as an ``EngineError`` saying that ``what`` could not be loaded, why, and ``advice``.

    Out-of-memory passes through (``devices.oom_as_engine_error`` turns it into ``OutOfMemoryError``).
    """
    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        if devices.is_oom(error):
            raise
        raise EngineError(f"{what} could not be loaded ({type(error).__name__}: {error}); {advice}") from error


def _check_cancel(cancel_event: threading.Event | None) -> None:
    if cancel_event is not None and cancel_event.is_set():
        raise GenerationCancelled()


class Engine:
    """Runs generation requests on one cached model.

    Not meant to run two generations at once: calls are serialised by a lock.
    ``cancel_event`` and ``on_progress`` make it safe to drive from a worker thread.
    """

    def __init__(self, options: EngineOptions = EngineOptions()) -> None:  # noqa: B008 - frozen, immutable
        options.validate()
        self.options = options
        self.device = devices.resolve_device(options.device)
        self.dtype = devices.resolve_dtype(options.precision, self.device)
        self.load_count = 0
        self._model: _LoadedModel | None = None
        self._upscaler: _LoadedUpscaler | None = None  # kept beside the artist's model
        self._clock: _RunClock | None = None  # the running generation's clock
        self._lock = threading.RLock()
        self.preview_decoder = "LINEAR"  # see set_preview_decoder
        self._preview_source: str | None = None
        self._tiny_previews: dict[tuple[str, str | None], Any] = {}  # (family, source) -> TinyDecoderPreview
        self._tiny_preview: Any = None  # the running generation's, or None (linear)

    def set_preview_decoder(self, kind: str, source: str | None = None) -> None:
        """The live preview's decoder: ``LINEAR`` (default, no model) or ``TAESD`` (the tiny VAE of the family,
        downloaded on first use with online access; ``source``: a local ``AutoencoderTiny`` folder instead).
        Without it on disk and offline, the preview falls back to ``LINEAR``."""
        from .preview_decoder import PREVIEW_DECODERS

        if kind not in PREVIEW_DECODERS:
            raise ValueError(f"preview decoder must be one of {', '.join(PREVIEW_DECODERS)}; got {kind!r}.")
        self.preview_decoder, self._preview_source = kind, source

    def _preview_for(self, family: str) -> Any:
        """The tiny decoder for this run, or None for the linear preview (also where it cannot be had)."""
        if self.preview_decoder != "TAESD":
            return None
        key = (family, self._preview_source)
        if key not in self._tiny_previews:
            from .preview_decoder import load_tiny_decoder, tiny_decoder_folder

            folder = self._preview_source or tiny_decoder_folder(
                family, cache_dir=self.options.cache_dir, offline=self.options.offline
            )
            if folder is None:
                log.warning("No tiny preview decoder for %s on disk and offline: using the linear preview.", family)
                return None
            self._tiny_previews[key] = load_tiny_decoder(folder, self.device, self.dtype)
        return self._tiny_previews[key]

    def _preview(self, latents: Any, family: str) -> np.ndarray | None:
        if self._tiny_preview is not None:
            return self._tiny_preview(latents)
        return latents_to_rgb(latents, family)

    # --- model cache ----------------------------------------------------------------------------------

    def loaded_model(self) -> LoadedModelInfo | None:
        """What is in memory, or None."""
        model = self._model
        if model is None:
            return None
        pipe = model.pipelines["TXT2IMG"]
        return LoadedModelInfo(
            source=model.source.location,
            family=model.family.name,
            device=self.device.type,
            dtype=devices.dtype_name(self.dtype),
            files=model.where.files,
            origin=model.where.origin,
            cache_dir=model.where.cache_dir,
            few_step=model.family.few_step,
            negative_prompt=not _runs_lcm(pipe),
            prediction_type=model.family.prediction_type,
        )

    def free(self) -> None:
        """Drop the model and give its memory back (gc, then the CUDA/MPS cache)."""
        with self._lock:
            model, self._model = self._model, None  # first: loaded_model() reads it without the lock
            self._upscaler = None
            if model is not None:
                model.pipelines.clear()
                model.controlnets.clear()
                model.lora_adapters.clear()
            self._tiny_previews.clear()
            self._tiny_preview = None
            devices.empty_cache(self.device)

    def load(
        self,
        model: str,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> LoadedModelInfo:
        """Load (or download) ``model`` now, as ``generate`` would; returns what is in memory."""
        with self._lock, devices.oom_as_engine_error(self.device):
            self._load(model, on_progress, cancel_event)
        info = self.loaded_model()
        assert info is not None
        return info

    def upscale(
        self,
        request: Any,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
        previews: bool = True,
    ) -> GenerationResult:
        """Upscale ``request.image`` (an ``UpscaleRequest``, see ``engine/upscale.py``) with this engine's model."""
        from .upscale import upscale

        with self._lock:
            return upscale(self, request, on_progress=on_progress, cancel_event=cancel_event, previews=previews)

    def load_upscaler(
        self,
        model: str,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> _LoadedUpscaler:
        """The x4 upscaler ``model`` (a ``StableDiffusionUpscalePipeline``: repo id or diffusers folder), loaded
        (or downloaded) into its own slot; ``upscale_x4`` runs its tiles with ``run_upscaler_tile``."""
        with self._lock, devices.oom_as_engine_error(self.device):
            source = sources.classify(model, allow_pickle=self.options.allow_pickle)
            key = (source.kind, source.location, str(self.device), devices.dtype_name(self.dtype))
            if self._upscaler is not None and self._upscaler.key == key:
                return self._upscaler
            self._upscaler = None
            if source.kind == "SINGLE_FILE":
                raise EngineError(
                    f"{source.location} is a single file; the x4 upscaler is loaded from its diffusers folder or "
                    "repo id (stabilityai/stable-diffusion-x4-upscaler)."
                )
            with _loading(f"The upscaler {source.location}", "its files may be incomplete - download it again."):
                pipe, where = self._read(source, on_progress, cancel_event, sources.UPSCALER_PIPELINES)
            self.load_count += 1
            # Not packed (pack_weights): at its 128x128 latents a tile measured no faster (27.7 s vs 26.2 s, 2 steps,
            # x4-upscaler-sized), and a packed copy would cost ~1 GB more.
            self._place(pipe, pack_weights=False)
            self._upscaler = _LoadedUpscaler(key, pipe, where, dict(pipe.scheduler.config))
            log.info("Loaded the upscaler %s on %s as %s", source.location, self.device, self.dtype)
            return self._upscaler

    def run_upscaler_tile(
        self,
        upscaler: _LoadedUpscaler,
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

        def on_step_end(step: int, timestep: Any, latents: Any) -> None:
            _check_cancel(cancel_event)
            if on_step is not None:
                on_step(step + 1)

        pipe = upscaler.pipe
        with self._lock, devices.oom_as_engine_error(self.device):
            _check_cancel(cancel_event)
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
            _check_cancel(cancel_event)
        return np.ascontiguousarray(images[0], dtype=np.float32)

    def _load(
        self,
        model: str,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
    ) -> _LoadedModel:
        options = self.options
        source = sources.classify(model, allow_pickle=options.allow_pickle)
        key = (source.kind, source.location, str(self.device), devices.dtype_name(self.dtype))
        if self._model is not None and self._model.key == key:
            return self._model
        self.free()  # one model in memory: drop the old one before reading the new one

        with _loading(f"The model {source.location}", "its files may be corrupt, incomplete or not a Stable "
                      "Diffusion model - download or convert it again."):
            pipe, where = self._read(source, on_progress, cancel_event)
        self.load_count += 1
        family = detect_family(pipe.unet.config, pipe.scheduler.config)
        self._place(pipe)
        self._model = _LoadedModel(
            key=key,
            source=source,
            family=family,
            where=where,
            scheduler_config=dict(pipe.scheduler.config),
            pipelines={"TXT2IMG": pipe},
            weight_bytes=self._resident_bytes(pipe),
        )
        log.info("Loaded %s (%s) on %s as %s", source.location, family.name, self.device, self.dtype)
        return self._model

    def _read(
        self,
        source: sources.ModelSource,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
        pipelines: tuple[str, ...] = sources.SUPPORTED_PIPELINES,
    ) -> tuple[Any, ModelFiles]:
        """Find (download) and load the pipeline for ``source`` on the CPU, in the engine's dtype
        (``pipelines``: the pipeline classes accepted, see ``sources.check_pipeline_index``).

        Returns the pipeline and where its weights came from, with their revision (see ``revisions``).
        """
        options = self.options
        prefer_variant = variant_for(devices.dtype_name(self.dtype))
        if source.kind == "SINGLE_FILE":
            pipe = sources.load_single_file(
                Path(source.location),
                dtype=self.dtype,
                cache_dir=options.cache_dir,
                offline=options.offline,
                read_cache_dirs=options.read_cache_dirs,
            )
            revision = revisions.file_digest(Path(source.location), options.cache_dir)
            return pipe, ModelFiles(source.location, "SINGLE_FILE", revision=revision)
        folder = Path(source.location)
        where = ModelFiles(source.location, "FOLDER")
        if source.kind == "HUB":
            found = sources.resolve_hub(
                source.location,
                cache_dir=options.cache_dir,
                offline=options.offline,
                prefer_variant=prefer_variant,
                allow_pickle=options.allow_pickle,
                read_cache_dirs=options.read_cache_dirs,
                on_progress=on_progress,
                cancel_event=cancel_event,
                pipelines=pipelines,
            )
            folder = found.folder
            where = ModelFiles(str(folder), "DOWNLOAD" if found.downloaded else "CACHE", found.cache_dir,
                               revisions.snapshot_revision(folder))
        _check_cancel(cancel_event)
        pipe = sources.load_folder(
            folder,
            name=source.location,
            dtype=self.dtype,
            allow_pickle=options.allow_pickle,
            prefer_variant=prefer_variant,
            pipelines=pipelines,
        )
        return pipe, where

    def _place(self, pipe: Any, *, pack_weights: bool = True) -> None:
        """Move to the device and apply the memory and speed modes (``pack_weights``: the UNet's, where on)."""
        pipe.set_progress_bar_config(disable=True)
        if self.options.cpu_offload and self.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        if self.options.attention_slicing:
            pipe.enable_attention_slicing()
        if self.channels_last:
            # CPU, SD-1.5 size (bench/results.md): the VAE decodes 8-19% faster, a UNet step is about the
            # same in fp32 and 2-8% faster in bf16; float rounding only.
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        if pack_weights:
            # The UNet only: the VAE decode measured the same packed or not (large images: the weights are reused
            # over many pixels), so a packed copy of it would only cost memory.
            self._pack_weights((pipe.unet,), self._resident_bytes(pipe))
        if self.options.torch_compile:
            # Compiled lazily: the first step at each new image size pays for it (timings["first_step"]),
            # once per cache folder: later runs load the compiled code (compiling.py, bench/).
            compiling.use_cache_folder(self.options.compile_cache_dir)
            pipe.unet = compiling.compile_module(pipe.unet, self.device)
        self._cache_prompt_embeddings(pipe)

    def _resident_bytes(self, pipe: Any) -> int:
        """Bytes of weights that stay on the device while the VAE decodes (with CPU offload: the UNet's at most)."""
        if self.options.cpu_offload and self.device.type == "cuda":
            modules = [pipe.unet]
        else:
            modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
        weights = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
        return weights + packed_weights.packable_bytes(modules, installed=True)

    def _pack_weights(self, modules: tuple[Any, ...], resident_bytes: int) -> None:
        """Pack the convolution and linear weights of ``modules`` (``packed_weights``) where the RAM holds the copy:
        ``resident_bytes`` (what is loaded now) plus the packed copies within ``PACKED_WEIGHTS_MEMORY_SHARE``."""
        if not self.packs_weights:
            return
        extra = packed_weights.packable_bytes(modules)
        total = devices.total_memory(self.device)
        if total is not None and resident_bytes + extra > PACKED_WEIGHTS_MEMORY_SHARE * total:
            log.info("Weights not packed: %.1f GB more would leave too little of %.1f GB of RAM.",
                     extra / 1e9, total / 1e9)
            return
        packed_weights.pack(modules)

    @property
    def channels_last(self) -> bool:
        """The UNet/VAE layout: ``AUTO`` is channels-last on the CPU only (measured there; not on GPUs)."""
        option = self.options.channels_last
        return option == "ON" or (option == "AUTO" and self.device.type == "cpu")

    @property
    def packs_weights(self) -> bool:
        """Pack convolution/linear weights once (``packed_weights``): CPU only, and not under ``torch.compile``,
        whose weight freezing packs them itself."""
        return self.options.pack_weights and self.device.type == "cpu" and not self.options.torch_compile

    def _cache_prompt_embeddings(self, pipe: Any) -> None:
        """Make ``pipe.encode_prompt`` remember its result for the same arguments (a repeated prompt).

        Every pipeline class calls ``self.encode_prompt(...)`` with its own arguments, so the
        pipeline's own method is wrapped rather than copied: a call with the same arguments
        (prompt, negative prompt, guidance on/off, clip skip, device, ...) returns copies of the
        tensors it returned before, and the text encoder does not run. Calls with precomputed
        embeddings or a LoRA scale pass straight through. The cache lives with the loaded
        model, so a new model (or ``free()``) starts empty.
        """
        if "encode_prompt" in vars(pipe) or not hasattr(pipe, "encode_prompt"):
            return
        method = type(pipe).encode_prompt
        signature = inspect.signature(method)
        owner = weakref.ref(pipe)  # no pipe -> wrapper -> pipe cycle: free() returns memory at once
        engine = weakref.ref(self)

        def encode_prompt(*args: Any, **kwargs: Any) -> Any:
            pipe_now, engine_now = owner(), engine()
            assert pipe_now is not None
            model = engine_now._model if engine_now is not None else None
            key = _prompt_key(method, signature, pipe_now, args, kwargs)
            if key is None or model is None:
                return method(pipe_now, *args, **kwargs)
            cached = model.prompt_cache.pop(key, None)
            if cached is None:
                start = time.perf_counter()
                cached = tuple(method(pipe_now, *args, **kwargs))
                if engine_now is not None and engine_now._clock is not None:
                    engine_now._clock.encode_prompt += time.perf_counter() - start
            model.prompt_cache[key] = cached  # newest last
            while len(model.prompt_cache) > PROMPT_CACHE_SIZE:
                model.prompt_cache.pop(next(iter(model.prompt_cache)))
            return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in cached)

        pipe.encode_prompt = encode_prompt

    def _pipeline(self, model: _LoadedModel, task: str, controlnet_key: tuple[str, ...] | None = None) -> Any:
        """The pipeline for ``task`` (``pipelines.TASKS``) with the cached ControlNet ``controlnet_key``;
        built on the loaded model's components (no second copy), then kept."""
        key: Any = task if controlnet_key is None else (task, controlnet_key)
        pipe = model.pipelines.get(key)
        if pipe is None:
            controlnet = model.controlnets[controlnet_key] if controlnet_key is not None else None
            pipe = pipelines.build(model.base, model.family, task, controlnet)
            if pipe is not model.base:
                if self.options.cpu_offload and self.device.type == "cuda":
                    pipe.enable_model_cpu_offload(device=self.device)
                self._cache_prompt_embeddings(pipe)
            model.pipelines[key] = pipe
        return pipe

    def _controlnet(
        self,
        model: _LoadedModel,
        request: GenerationRequest,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
    ) -> tuple[tuple[str, str, str, str], str]:
        """Load (or reuse) the request's ControlNet beside the model; return its cache key and resolved name.

        Raises:
            ValueError: no ``control_model`` and no default for the model's family.
            EngineError: it cannot be loaded, or it is made for another family.
        """
        options = self.options
        name = controlnets.resolve_source(request.control_model, model.family, request.control)
        source = controlnets.classify(name, allow_pickle=options.allow_pickle)
        key = (source.kind, source.location, str(self.device), devices.dtype_name(self.dtype))
        if key in model.controlnets:
            model.controlnets[key] = model.controlnets.pop(key)  # newest last
            return key, name
        prefer_variant = "fp16" if self.dtype in (torch.float16, torch.bfloat16) else None
        with _loading(f"The ControlNet {name} (control_model)", "its files may be corrupt or incomplete, or it is "
                      "not a ControlNet."):
            controlnet = controlnets.load(
                source,
                dtype=self.dtype,
                cache_dir=options.cache_dir,
                offline=options.offline,
                allow_pickle=options.allow_pickle,
                prefer_variant=prefer_variant,
                read_cache_dirs=options.read_cache_dirs,
                on_progress=on_progress,
                cancel_event=cancel_event,
            )
        controlnets.check_family(controlnet, model.base.unet, model.family, name)
        if not (options.cpu_offload and self.device.type == "cuda"):
            controlnet.to(self.device)
        if self.channels_last:
            controlnet.to(memory_format=torch.channels_last)
        controlnet_bytes = sum(p.numel() * p.element_size() for p in controlnet.parameters())
        self._pack_weights((controlnet,), model.weight_bytes + controlnet_bytes)
        while len(model.controlnets) >= CONTROLNET_CACHE_SIZE:
            dropped = next(iter(model.controlnets))
            del model.controlnets[dropped]
            for pipe_key in [k for k in model.pipelines if isinstance(k, tuple) and k[1] == dropped]:
                del model.pipelines[pipe_key]
        model.controlnets[key] = controlnet
        log.info("Loaded the ControlNet %s beside %s", source.location, model.source.location)
        return key, name

    def _apply_loras(
        self,
        model: _LoadedModel,
        specs: tuple[LoraSpec, ...] | list[LoraSpec],
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
    ) -> list[dict[str, Any]]:
        """Make exactly ``specs`` active on the model (loading new adapters, disabling the others).

        Adapters stay loaded (up to ``LORA_CACHE_SIZE``) so switching back costs nothing; with no
        LoRA asked for, all are disabled and the model computes exactly as without them.

        Returns:
            The recipe entries (name, repo id or sha256, weight), in the request's order.
        """
        options = self.options
        base = model.base
        active: list[tuple[str, float]] = []
        entries: list[dict[str, Any]] = []
        for i, spec in enumerate(specs):
            field_name = f"loras[{i}]"
            lora = loras.resolve(
                spec.source,
                allow_pickle=options.allow_pickle,
                cache_dir=options.cache_dir,
                offline=options.offline,
                read_cache_dirs=options.read_cache_dirs,
                on_progress=on_progress,
                cancel_event=cancel_event,
            )
            cached = model.lora_adapters.get(str(lora.path))
            if cached is None:
                _check_cancel(cancel_event)
                adapter = self._load_lora(model, lora, field_name)
            else:
                adapter = cached[0]
                model.lora_adapters[str(lora.path)] = model.lora_adapters.pop(str(lora.path))  # newest last
            active.append((adapter, float(spec.weight)))
            entries.append(lora.recipe(spec.weight))
        state = tuple(active)
        if state != model.lora_state:
            if active:
                base.set_adapters([a for a, _ in active], adapter_weights=[w for _, w in active])
                base.enable_lora()
            elif model.lora_adapters:
                base.disable_lora()
            model.prompt_cache.clear()  # a LoRA on the text encoder changes the prompt's embeddings
            model.lora_state = state
        self._trim_loras(model, {a for a, _ in active})
        return entries

    def _load_lora(self, model: _LoadedModel, lora: loras.LoraFile, field_name: str) -> str:
        base = model.base
        try:
            state_dict = loras.read_state_dict(lora)
        except (OSError, ValueError, RuntimeError) as error:
            raise EngineError(
                f"{field_name}: the LoRA {lora.name} could not be read ({type(error).__name__}: {error})."
            ) from error
        loras.check_family(state_dict, base.unet.config.cross_attention_dim, model.family.name, lora.name, field_name)
        model.adapters_made += 1
        adapter = f"lora_{model.adapters_made}"
        try:
            base.load_lora_weights(state_dict, adapter_name=adapter)
        except (ValueError, RuntimeError, KeyError, TypeError) as error:
            with contextlib.suppress(Exception):  # take back whatever part of it was injected
                base.delete_adapters(adapter)
            raise EngineError(
                f"{field_name}: the LoRA {lora.name} does not fit the model {model.source.location} "
                f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''})."
            ) from error
        model.lora_adapters[str(lora.path)] = (adapter, lora)
        # load_lora_weights makes the new adapter the active one: whatever was recorded is stale now.
        model.lora_state = ((adapter, math.nan),)
        return adapter

    def _trim_loras(self, model: _LoadedModel, keep: set[str]) -> None:
        """Unload the oldest adapters not in use beyond ``LORA_CACHE_SIZE``."""
        while len(model.lora_adapters) > LORA_CACHE_SIZE:
            path = next((p for p, (a, _) in model.lora_adapters.items() if a not in keep), None)
            if path is None:
                return
            adapter, _ = model.lora_adapters.pop(path)
            model.base.delete_adapters(adapter)

    # --- generation -----------------------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
        previews: bool = True,
        recorder: Any = None,
    ) -> GenerationResult:
        """Validate and run ``request`` on the cached model (loading or downloading it first if needed).

        With ``control`` set, the ControlNet (``control_model`` or the family's default) is loaded
        beside the model and its pipeline built with ``from_pipe`` on the model's components; with
        ``loras``, their adapters are activated (and every other one disabled). INPAINT results
        carry ``init_image``'s own pixels wherever the feathered mask is 0.

        Args:
            request: what to generate; ``seed=None`` draws a random seed (returned in the result).
            on_progress: called from this thread with ``ProgressEvent(stage="DOWNLOAD")`` while a hub
                model downloads (bytes) and ``ProgressEvent(stage="DENOISE")`` after every denoising
                step (with a latent preview). It may raise ``GenerationCancelled`` to stop.
            cancel_event: set it from any thread to stop; the run ends at the next step boundary.
            previews: False skips computing the per-step preview (``ProgressEvent.preview`` is None):
                nobody sees it headless.
            recorder: an ``insight.InsightRecorder`` that records this run's filmstrip / attention maps
                (its ``images`` after the run); None records nothing and costs nothing.

        Returns:
            The RGBA image (float32, top row first, 0..1), the seed used and the recipe.

        Raises:
            ValueError: a request field is invalid (the message names it and what it accepts), also
                for this model: control/mode an SD 2 depth model cannot run, no default ControlNet.
            GenerationCancelled: cancelled; no result (also when the event is set during the VAE decode).
            ModelNotFoundError, UnsafeModelFormatError, OutOfMemoryError, EngineError: with a message
                that says what to do.
        """
        request.validate()
        if recorder is not None:
            recorder.validate(request.prompt)
        seed = int(request.seed) if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        clock = _RunClock()
        with self._lock:
            _check_cancel(cancel_event)
            with devices.oom_as_engine_error(self.device):
                model = self._load(request.model, on_progress, cancel_event)
                clock.load = time.perf_counter() - clock.start
                _check_cancel(cancel_event)
                _check_request_fits(request, model)
                task = pipelines.task_for(model.family, request.mode)
                controlnet_key, control_model = self._control_for(model, request, on_progress, cancel_event)
                lora_entries = self._apply_loras(model, request.loras, on_progress, cancel_event)
                _check_cancel(cancel_event)
                pipe = self._pipeline(model, task, controlnet_key)
                scheduler = "LCM" if _runs_lcm(pipe) else request.scheduler  # LCM pipelines step only with it
                pipe.scheduler = make_scheduler(scheduler, model.scheduler_config, request.steps)
                vae_tiled = self._set_vae_tiling(pipe, request)
                # A tiled decode would wrap each tile around itself: the VAE then decodes the whole
                # image's wrap itself (decode_wrapped) and only the UNet (and ControlNet) pad circularly.
                wrap_decode = request.seamless if vae_tiled else "NONE"
                mask = inpaint.feather_mask(request.mask_image, request.mask_blur) if request.mode == "INPAINT" else None
                use_tiny = on_progress is not None and previews
                self._tiny_preview = self._preview_for(model.family.name) if use_tiny else None
                kwargs = self._call_arguments(pipe, model, request, seed, on_progress, cancel_event, clock,
                                              previews)
                kwargs.update(_task_arguments(request, task, mask, controlled=controlnet_key is not None))
                kwargs = {k: v for k, v in kwargs.items() if k in inspect.signature(pipe.__call__).parameters}
                unet = pipe.unet
                eager = request.seamless != "NONE" or (recorder is not None and recorder.attention)
                if eager and hasattr(unet, "_orig_mod"):
                    # compiled graphs know no circular padding nor recording processors: run eagerly
                    pipe.unet = unet._orig_mod
                hook = pipe.unet.register_forward_pre_hook(clock.on_unet_call)
                self._clock = clock
                controlnet = (pipe.controlnet,) if controlnet_key is not None else ()
                try:
                    patched = (pipe.unet, *controlnet) + (() if wrap_decode != "NONE" else (pipe.vae,))
                    with seamless(patched, request.seamless):
                        insight = contextlib.nullcontext()
                        if recorder is not None:
                            insight = recorder.attach(pipe, kwargs, request.height, request.width)
                        with insight:
                            latents = pipe(**kwargs).images
                        _check_cancel(cancel_event)
                        images = self._decode(pipe, model, latents, clock, wrap=wrap_decode)
                        if recorder is not None:
                            recorder.finish(
                                images[0],
                                model.family.name,
                                lambda latent: self._decode(
                                    pipe, model, latent.to(self.device), _RunClock(), wrap=wrap_decode
                                )[0],
                                lambda: _check_cancel(cancel_event),
                            )
                except Exception as error:
                    if self.options.torch_compile and type(error).__module__.startswith(_COMPILER_MODULES):
                        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                        raise EngineError(
                            f"torch.compile could not compile the model ({type(error).__name__}: {detail}); "
                            "turn off 'Compile the Model' in the preferences."
                        ) from error
                    raise
                finally:
                    self._clock = None
                    hook.remove()
                    if pipe.unet is not unet:
                        pipe.unet = unet
            _check_cancel(cancel_event)

        rgba = np.ones((request.height, request.width, 4), dtype=np.float32)
        if mask is not None:
            assert request.init_image is not None  # validated
            rgba[..., :3] = inpaint.composite(images[0], request.init_image, mask)  # kept pixels: exactly the input
        else:
            rgba[..., :3] = images[0]
        recipe = self._recipe(request, seed, model.family)
        recipe.update(
            control=request.control,
            control_model=control_model,
            control_strength=float(request.control_strength),
            loras=lora_entries,
            mask=request.mode == "INPAINT",
            mask_blur=int(request.mask_blur),
            **model.where.recipe_fields(),
        )
        return GenerationResult(image=rgba, seed=seed, recipe=recipe, timings=clock.timings(),
                                ignored=self._ignored(pipe, model, request))

    def _control_for(
        self,
        model: _LoadedModel,
        request: GenerationRequest,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
    ) -> tuple[tuple[str, str, str, str] | None, str]:
        """The ControlNet to run (its cache key, or None) and the ``control_model`` the recipe records.

        ``control_strength == 0`` runs the plain pipeline, no ControlNet: exactly the pixels of no
        control. An SD 2 depth model reads the depth itself: no ControlNet, recipe ``control_model`` "".
        """
        if request.control == "NONE" or model.family.depth:
            return None, ""
        if request.control_strength == 0:
            try:
                return None, controlnets.resolve_source(request.control_model, model.family, request.control)
            except ValueError:
                return None, ""
        return self._controlnet(model, request, on_progress, cancel_event)

    def _decode(self, pipe: Any, model: _LoadedModel, latents: Any, clock: _RunClock, wrap: str = "NONE") -> np.ndarray:
        """Latents -> float32 (batch, h, w, 3) images in 0..1, as the pipeline itself would decode them.

        ``wrap``: the seamless axes a tiled decode must wrap across (see ``tiling.decode_wrapped``).

        Half precision first (unless ``vae_precision="FP32"`` or this model already overflowed);
        a decode with NaN/inf in it is repeated in fp32, and the model keeps decoding in fp32.

        Raises:
            EngineError: the fp32 decode is not finite either (the denoising itself overflowed).
        """
        start = time.perf_counter()
        vae = pipe.vae
        half = vae.dtype != torch.float32
        upcast = half and (self.options.vae_precision == "FP32" or model.vae_fp32)
        image = self._vae_decode(pipe, model, latents, upcast=upcast, wrap=wrap)
        if half and not upcast and not bool(torch.isfinite(image).all()):
            image = self._vae_decode(pipe, model, latents, upcast=True, wrap=wrap)
            if bool(torch.isfinite(image).all()):
                log.warning("The VAE overflowed in %s: this model decodes in float32 from now on.", vae.dtype)
                model.vae_fp32 = True
        if not bool(torch.isfinite(image).all()):
            raise EngineError(
                f"The model produced invalid values (NaN or infinity) in {devices.dtype_name(self.dtype)}; "
                "set the precision to FP32 (or BF16) in the preferences and generate again."
            )
        watermark = getattr(pipe, "watermark", None)  # SDXL pipelines, when invisible-watermark is installed
        if watermark is not None:
            image = watermark.apply_watermark(image)
        images = pipe.image_processor.postprocess(image, output_type="np", do_denormalize=[True] * image.shape[0])
        if self.options.cpu_offload and self.device.type == "cuda":
            pipe.maybe_free_model_hooks()  # the pipeline offloaded before our decode; offload the VAE too
        clock.decode = time.perf_counter() - start
        return images

    def _vae_decode(self, pipe: Any, model: _LoadedModel, latents: Any, *, upcast: bool, wrap: str = "NONE") -> Any:
        """The decode step of diffusers' SD/SDXL/LCM pipelines (``output_type="latent"`` stops before it).

        ``upcast``: run the VAE in fp32 for this decode (its weights are cast and cast back).
        """
        vae = pipe.vae
        dtype = vae.dtype
        if upcast:
            # torch's own Module.to: diffusers' override warns about every cast, and this one is deliberate.
            torch.nn.Module.to(vae, dtype=torch.float32)
        try:
            config = vae.config
            latents = latents.to(dtype=vae.dtype)
            mean = getattr(config, "latents_mean", None)
            std = getattr(config, "latents_std", None)
            if model.family.name == "SDXL" and mean is not None and std is not None:
                shape = (1, len(mean), 1, 1)
                mean_t = torch.tensor(mean).view(shape).to(latents.device, latents.dtype)
                std_t = torch.tensor(std).view(shape).to(latents.device, latents.dtype)
                latents = latents * std_t / config.scaling_factor + mean_t
            else:
                latents = latents / config.scaling_factor
            with torch.no_grad():
                if wrap != "NONE":
                    return decode_wrapped(vae, latents, wrap)
                return vae.decode(latents, return_dict=False)[0]
        finally:
            if upcast:
                torch.nn.Module.to(vae, dtype=dtype)

    def _set_vae_tiling(self, pipe: Any, request: GenerationRequest) -> bool:
        """Turn the VAE's tiling on or off for ``request``; True when it is on."""
        mode = self.options.vae_tiling
        if mode == "ON" or (mode == "AUTO" and self.needs_vae_tiling(request.width * request.height)):
            pipe.vae.enable_tiling()
            return True
        pipe.vae.disable_tiling()
        return False

    def needs_vae_tiling(self, pixels: int) -> bool:
        """VAE tiling ``AUTO`` for the loaded model: would an untiled decode of ``pixels`` not fit beside it?"""
        model = self._model
        if model is None:
            raise EngineError("needs_vae_tiling() asks about the loaded model, and none is loaded.")
        vae = model.pipelines["TXT2IMG"].vae
        fp32 = self.options.vae_precision == "FP32" or model.vae_fp32
        itemsize = 4 if fp32 else torch.finfo(vae.dtype).bits // 8
        return vae_tiling_needed(pixels, itemsize, devices.total_memory(self.device), model.weight_bytes)

    def _call_arguments(
        self,
        pipe: Any,
        model: _LoadedModel,
        request: GenerationRequest,
        seed: int,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
        clock: _RunClock,
        previews: bool = True,
    ) -> dict[str, Any]:
        family = model.family.name

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            clock.step_ends.append(time.perf_counter())
            _check_cancel(cancel_event)
            if on_progress is not None:
                total = getattr(pipe, "num_timesteps", None) or request.steps
                preview = self._preview(tensors["latents"], family) if previews else None
                on_progress(ProgressEvent(step + 1, int(total), preview))
                _check_cancel(cancel_event)
            return tensors

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            # None (not "") lets SDXL use its zero negative embedding, as it was trained to.
            "negative_prompt": request.negative_prompt or None,
            "num_inference_steps": request.steps,
            # diffusers runs no unconditional pass when guidance_scale <= 1.
            "guidance_scale": float(request.guidance_scale),
            "generator": devices.seed_generator(seed),
            "output_type": "latent",  # decoded by _decode (fp32 fallback, timings)
            "callback_on_step_end": on_step_end,
        }
        accepted = inspect.signature(pipe.__call__).parameters
        return {k: v for k, v in kwargs.items() if k in accepted}  # LCM pipelines take no negative prompt

    @staticmethod
    def _ignored(pipe: Any, model: _LoadedModel, request: GenerationRequest) -> list[str]:
        """The request's settings that have no effect on this pipeline, one sentence each (for the artist)."""
        lcm = _runs_lcm(pipe)  # LatentConsistencyModelPipeline: no unconditional pass at all
        notes = []
        if lcm and request.scheduler != "LCM":
            notes.append(f"The scheduler {request.scheduler} has no effect: LCM pipelines run the LCM scheduler.")
        if request.negative_prompt.strip():
            if lcm:
                notes.append("The negative prompt has no effect: this model runs an LCM pipeline, which takes none.")
            elif request.guidance_scale <= 1:
                notes.append("The negative prompt has no effect with guidance at 1 or below (no unconditional pass); "
                             "raise the guidance to use it.")
        if request.guidance_scale > 1 and model.family.few_step and not lcm:  # LCM embeds guidance instead
            notes.append(f"Guidance {request.guidance_scale:g} on a few-step model doubles the work per step and "
                         "usually overcooks the image; few-step models are made for guidance 0-1.")
        return notes

    def _recipe(
        self, request: GenerationRequest, seed: int, family: ModelFamily
    ) -> dict[str, Any]:
        return {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "model": request.model,
            "mode": request.mode,
            "seed": int(seed),
            "steps": int(request.steps),
            "scheduler": request.scheduler,
            "guidance_scale": float(request.guidance_scale),
            "strength": float(request.strength),
            "width": int(request.width),
            "height": int(request.height),
            "seamless": request.seamless,
            "version": read_version(),
            "family": family.name,
            "prediction_type": family.prediction_type,
            "few_step": family.few_step,
            "device": self.device.type,
            "dtype": devices.dtype_name(self.dtype),
            **devices.reproducibility_fields(self.device),
        }


def _check_request_fits(request: GenerationRequest, model: _LoadedModel) -> None:
    """What only the loaded model can tell: an SD 2 depth model needs a depth image and cannot inpaint.

    Raises:
        ValueError: naming the field to change.
    """
    if not model.family.depth:
        return
    name = model.source.location
    if request.control != "DEPTH":
        raise ValueError(
            f"control must be DEPTH for {name}: it is an SD 2 depth model and paints from the depth image "
            "(control_image); set control to DEPTH, or choose another model."
        )
    if request.mode == "INPAINT":
        raise ValueError(f"mode INPAINT is not available with the SD 2 depth model {name}; use TXT2IMG or IMG2IMG.")
    assert request.control_image is not None  # validated with control DEPTH
    if float(np.ptp(request.control_image[..., 0])) == 0.0:
        raise ValueError(
            "control_image is one flat value everywhere; the SD 2 depth model needs depth that varies "
            "(near = white, background black)."
        )


def _task_arguments(
    request: GenerationRequest, task: str, mask: np.ndarray | None, *, controlled: bool
) -> dict[str, Any]:
    """The pipeline arguments that depend on the task: input image, mask, strength, size, control image."""
    height, width = request.height, request.width
    init = request.init_image
    rgb = np.ascontiguousarray(init[None, :, :, :3]) if init is not None else None
    grey = np.full((1, height, width, 3), 0.5, dtype=np.float32)  # the unused input of a from-scratch run
    kwargs: dict[str, Any] = {}
    if task == "DEPTH2IMG":
        image = rgb if request.mode == "IMG2IMG" else grey
        assert request.control_image is not None  # checked by _check_request_fits
        kwargs["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
        kwargs["depth_map"] = torch.from_numpy(np.ascontiguousarray(request.control_image[None, :, :, 0]))
        kwargs["strength"] = float(request.strength) if request.mode == "IMG2IMG" else 1.0
    elif task == "INPAINT":
        # A dedicated inpainting model runs TXT2IMG/IMG2IMG too: the whole frame masked.
        if mask is None:
            mask = np.ones((height, width), dtype=np.float32)
        kwargs["image"] = rgb if request.mode != "TXT2IMG" else grey
        kwargs["mask_image"] = torch.from_numpy(np.ascontiguousarray(mask[None, None]))
        kwargs["strength"] = float(request.strength) if request.mode != "TXT2IMG" else 1.0
        kwargs["height"], kwargs["width"] = height, width
    elif task == "IMG2IMG":
        kwargs["image"] = rgb
        kwargs["strength"] = float(request.strength)
    else:
        kwargs["height"], kwargs["width"] = height, width
    if controlled:
        assert request.control_image is not None  # validated
        control = np.ascontiguousarray(request.control_image[None])
        kwargs["image" if task == "TXT2IMG" else "control_image"] = control
        kwargs["controlnet_conditioning_scale"] = float(request.control_strength)
    return kwargs


def _runs_lcm(pipe: Any) -> bool:
    """An LCM pipeline: it takes no negative prompt (no unconditional pass) and steps with the LCM scheduler."""
    return "negative_prompt" not in inspect.signature(pipe.__call__).parameters


def _prompt_key(method: Any, signature: inspect.Signature, pipe: Any, args: Any, kwargs: Any) -> tuple[Any, ...] | None:
    """A hashable key for one ``encode_prompt`` call, or None when it must not be cached."""
    try:
        bound = signature.bind(pipe, *args, **kwargs)
    except TypeError:
        return None
    items: list[tuple[str, Any]] = []
    for name, value in list(bound.arguments.items())[1:]:  # [0] is self
        if name in _EMBEDDING_ARGUMENTS:
            if value is not None:
                return None
            continue
        if isinstance(value, torch.device):
            value = str(value)
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
            return None  # a tensor, an image, ...: not something to key a cache on
        items.append((name, values if isinstance(value, (list, tuple)) else value))
    return (method.__qualname__, *items)
