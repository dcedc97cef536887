"""The engine: one cached model, txt2img and img2img on it, progress, cancel, seamless output.

Imports torch and diffusers at the top; the package imports this module only
when an engine is first asked for (``get_engine``).
"""

from __future__ import annotations

import inspect
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import compiling, devices, sources
from ._version import read_version
from .errors import EngineError, GenerationCancelled
from .families import ModelFamily, detect_family
from .preview import latents_to_rgb
from .request import (
    MAX_SEED,
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    LoadedModelInfo,
    ProgressEvent,
)
from .schedulers import make_scheduler
from .tiling import seamless

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]
# VAE tiling AUTO: tile when an untiled decode would take more than this share of the memory the
# device has beside the model's weights. The decode's peak, measured for the SD/SDXL VAE on the CPU
# in fp32 (bench/): +0.78 GB at 512x512, +3.0 GB at 1024x1024, i.e. ~3 KB per output pixel.
VAE_DECODE_BYTES_PER_PIXEL_FP32 = 3072
VAE_TILING_MEMORY_SHARE = 0.5
VAE_TILING_AUTO_PIXELS = 1024 * 1024  # where the device's memory is unknown: tile above this many pixels
_COMPILER_MODULES = ("torch._dynamo", "torch._inductor")  # where torch.compile's errors come from
PROMPT_CACHE_SIZE = 4  # prompts whose text embeddings are kept per loaded model
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
    scheduler_config: dict[str, Any]
    pipelines: dict[str, Any] = field(default_factory=dict)
    # encode_prompt's arguments -> its outputs, newest last (see Engine._cache_prompt_embeddings)
    prompt_cache: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)
    vae_fp32: bool = False  # a half-precision decode overflowed: this model's VAE decodes in fp32
    weight_bytes: int = 0  # what the weights take on the device (VAE tiling AUTO)


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
        self._clock: _RunClock | None = None  # the running generation's clock
        self._lock = threading.RLock()

    # --- model cache ----------------------------------------------------------------------------------

    def loaded_model(self) -> LoadedModelInfo | None:
        """What is in memory, or None."""
        model = self._model
        if model is None:
            return None
        return LoadedModelInfo(
            source=model.source.location,
            family=model.family.name,
            device=self.device.type,
            dtype=devices.dtype_name(self.dtype),
        )

    def free(self) -> None:
        """Drop the model and give its memory back (gc, then the CUDA/MPS cache)."""
        with self._lock:
            if self._model is not None:
                self._model.pipelines.clear()
                self._model = None
            devices.empty_cache(self.device)

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

        try:
            pipe = self._read(source, on_progress, cancel_event)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
            if devices.is_oom(error):
                raise  # -> OutOfMemoryError in generate()
            raise EngineError(
                f"The model {source.location} could not be loaded ({type(error).__name__}: {error}); its files "
                "may be corrupt, incomplete or not a Stable Diffusion model - download or convert it again."
            ) from error
        self.load_count += 1
        family = detect_family(pipe.unet.config, pipe.scheduler.config)
        self._place(pipe)
        self._model = _LoadedModel(
            key=key,
            source=source,
            family=family,
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
    ) -> Any:
        """Find (download) and load the pipeline for ``source`` on the CPU, in the engine's dtype."""
        options = self.options
        prefer_variant = "fp16" if self.dtype in (torch.float16, torch.bfloat16) else None
        if source.kind == "SINGLE_FILE":
            pipe = sources.load_single_file(
                Path(source.location), dtype=self.dtype, cache_dir=options.cache_dir, offline=options.offline
            )
        else:
            folder = Path(source.location)
            if source.kind == "HUB":
                folder = sources.resolve_hub(
                    source.location,
                    cache_dir=options.cache_dir,
                    offline=options.offline,
                    prefer_variant=prefer_variant,
                    allow_pickle=options.allow_pickle,
                    on_progress=on_progress,
                    cancel_event=cancel_event,
                )
            _check_cancel(cancel_event)
            pipe = sources.load_folder(
                folder,
                name=source.location,
                dtype=self.dtype,
                allow_pickle=options.allow_pickle,
                prefer_variant=prefer_variant,
            )
        return pipe

    def _place(self, pipe: Any) -> None:
        """Move to the device and apply the memory modes."""
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
        return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())

    @property
    def channels_last(self) -> bool:
        """The UNet/VAE layout: ``AUTO`` is channels-last on the CPU only (measured there; not on GPUs)."""
        option = self.options.channels_last
        return option == "ON" or (option == "AUTO" and self.device.type == "cpu")

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

    def _pipeline(self, model: _LoadedModel, mode: str) -> Any:
        """The pipeline for ``mode``; img2img is built on the txt2img components (no second copy)."""
        pipe = model.pipelines.get(mode)
        if pipe is None:
            from diffusers import AutoPipelineForImage2Image

            pipe = AutoPipelineForImage2Image.from_pipe(model.pipelines["TXT2IMG"])
            pipe.set_progress_bar_config(disable=True)
            if self.options.cpu_offload and self.device.type == "cuda":
                pipe.enable_model_cpu_offload(device=self.device)
            self._cache_prompt_embeddings(pipe)
            model.pipelines[mode] = pipe
        return pipe

    # --- generation -----------------------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> GenerationResult:
        """Validate and run ``request`` on the cached model (loading or downloading it first if needed).

        Args:
            request: what to generate; ``seed=None`` draws a random seed (returned in the result).
            on_progress: called from this thread with ``ProgressEvent(stage="DOWNLOAD")`` while a hub
                model downloads (bytes) and ``ProgressEvent(stage="DENOISE")`` after every denoising
                step (with a latent preview). It may raise ``GenerationCancelled`` to stop.
            cancel_event: set it from any thread to stop; the run ends at the next step boundary.

        Returns:
            The RGBA image (float32, top row first, 0..1), the seed used and the recipe.

        Raises:
            ValueError: a request field is invalid (the message names it and what it accepts).
            GenerationCancelled: cancelled; no result (also when the event is set during the VAE decode).
            ModelNotFoundError, UnsafeModelFormatError, OutOfMemoryError, EngineError: with a message
                that says what to do.
        """
        request.validate()
        seed = int(request.seed) if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        clock = _RunClock()
        with self._lock:
            _check_cancel(cancel_event)
            with devices.oom_as_engine_error(self.device):
                model = self._load(request.model, on_progress, cancel_event)
                clock.load = time.perf_counter() - clock.start
                _check_cancel(cancel_event)
                pipe = self._pipeline(model, request.mode)
                pipe.scheduler = make_scheduler(request.scheduler, model.scheduler_config, request.steps)
                self._set_vae_tiling(pipe, request)
                kwargs = self._call_arguments(pipe, model, request, seed, on_progress, cancel_event, clock)
                unet = pipe.unet
                if request.seamless != "NONE" and hasattr(unet, "_orig_mod"):
                    pipe.unet = unet._orig_mod  # compiled graphs know no circular padding: run eagerly
                hook = pipe.unet.register_forward_pre_hook(clock.on_unet_call)
                self._clock = clock
                try:
                    with seamless((pipe.unet, pipe.vae), request.seamless):
                        latents = pipe(**kwargs).images
                        _check_cancel(cancel_event)
                        images = self._decode(pipe, model, latents, clock)
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
        rgba[..., :3] = images[0]
        return GenerationResult(
            image=rgba,
            seed=seed,
            recipe=self._recipe(request, seed, model.family),
            timings=clock.timings(),
        )

    def _decode(self, pipe: Any, model: _LoadedModel, latents: Any, clock: _RunClock) -> np.ndarray:
        """Latents -> float32 (batch, h, w, 3) images in 0..1, as the pipeline itself would decode them.

        Half precision first (unless ``vae_precision="FP32"`` or this model already overflowed);
        a decode with NaN/inf in it is repeated in fp32, and the model keeps decoding in fp32.

        Raises:
            EngineError: the fp32 decode is not finite either (the denoising itself overflowed).
        """
        start = time.perf_counter()
        vae = pipe.vae
        half = vae.dtype != torch.float32
        upcast = half and (self.options.vae_precision == "FP32" or model.vae_fp32)
        image = self._vae_decode(pipe, model, latents, upcast=upcast)
        if half and not upcast and not bool(torch.isfinite(image).all()):
            image = self._vae_decode(pipe, model, latents, upcast=True)
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

    def _vae_decode(self, pipe: Any, model: _LoadedModel, latents: Any, *, upcast: bool) -> Any:
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
                return vae.decode(latents, return_dict=False)[0]
        finally:
            if upcast:
                torch.nn.Module.to(vae, dtype=dtype)

    def _set_vae_tiling(self, pipe: Any, request: GenerationRequest) -> None:
        mode = self.options.vae_tiling
        if mode == "ON" or (mode == "AUTO" and self.needs_vae_tiling(request.width * request.height)):
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()

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
    ) -> dict[str, Any]:
        family = model.family.name

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            clock.step_ends.append(time.perf_counter())
            _check_cancel(cancel_event)
            if on_progress is not None:
                total = getattr(pipe, "num_timesteps", None) or request.steps
                on_progress(ProgressEvent(step + 1, int(total), latents_to_rgb(tensors["latents"], family)))
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
        if request.mode == "IMG2IMG":
            assert request.init_image is not None  # validated
            kwargs["image"] = np.ascontiguousarray(request.init_image[None, :, :, :3])
            kwargs["strength"] = float(request.strength)
        else:
            kwargs["height"] = request.height
            kwargs["width"] = request.width
        accepted = inspect.signature(pipe.__call__).parameters
        return {k: v for k, v in kwargs.items() if k in accepted}  # LCM pipelines take no negative prompt

    def _recipe(self, request: GenerationRequest, seed: int, family: ModelFamily) -> dict[str, Any]:
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
        }


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
