"""The generation task: txt2img, img2img and inpainting on the cached base model, with its ControlNets and
LoRAs; progress with previews, cancel, seamless output, insight recording, per-run timings, the recipe.

A task module: it uses the model cache and the core modules beside it, never another task.
Imports torch; reached only through ``engine.py``, once an engine is asked for.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from typing import Any

import numpy as np

from . import base_model, decoding, devices, inpaint, pipelines, reference_slot
from ._version import read_version
from .base_model import LoadedModel
from .controlnet_slot import controlnet_for
from .errors import EngineError, check_cancel
from .families import ModelFamily
from .lora_adapters import apply_loras
from .model_cache import ModelCache
from .placement import Placement
from .preview import latents_to_rgb
from .preview_decoder import cached_tiny_decoder
from .request import GenerationRequest, GenerationResult, ProgressCallback, ProgressEvent
from .schedulers import make_scheduler
from .tiling import seamless

_COMPILER_MODULES = ("torch._dynamo", "torch._inductor")  # where torch.compile's errors come from


class RunClock:
    """Where one generation's time goes (``GenerationResult.timings``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.load = 0.0
        self.encode_prompt = 0.0
        # with a reference image: its adapter into the UNet, its encoder read, the picture encoded (else None)
        self.reference: float | None = None
        self.first_unet_call: float | None = None
        self.step_ends: list[float] = []
        self.decode = 0.0

    def on_encoded(self, seconds: float) -> None:
        self.encode_prompt += seconds

    def on_unet_call(self, module: Any, args: Any) -> None:
        if self.first_unet_call is None:
            self.first_unet_call = time.perf_counter()

    def timings(self) -> dict[str, float]:
        out = {"load": self.load, "encode_prompt": self.encode_prompt, "decode": self.decode}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.first_unet_call is not None:
            setup = self.first_unet_call - self.start - self.load - self.encode_prompt - (self.reference or 0.0)
            out["before_first_step"] = max(setup, 0.0)
            if self.step_ends:
                out["first_step"] = self.step_ends[0] - self.first_unet_call
                out["denoise"] = self.step_ends[-1] - self.first_unet_call
        out["total"] = time.perf_counter() - self.start
        return {key: round(value, 6) for key, value in out.items()}


def generate(
    cache: ModelCache,
    request: GenerationRequest,
    seed: int,
    *,
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
    previews: bool = True,
    recorder: Any = None,
    tiny_preview: bool = False,
    tiny_preview_source: str | None = None,
    views: Any = None,
) -> GenerationResult:
    """Run the validated ``request`` with ``seed`` on the cached model (loading or downloading it first).

    ``views``: SYNC's views (``sync.SyncViews``, passed by the facade): the call becomes their batch, its steps
    synchronised; every decoded view lands in ``views.images``, the result image is view 1.
    ``tiny_preview``: previews from the family's tiny VAE (``preview_decoder.py``; ``tiny_preview_source``:
    a local one) where it can be had, else the linear preview. The rest as ``Engine.generate``.
    """
    placement = cache.placement
    clock = RunClock()
    check_cancel(cancel_event)
    with devices.oom_as_engine_error(placement.device):
        model = base_model.load(cache, request.model, on_progress, cancel_event)
        clock.load = time.perf_counter() - clock.start
        check_cancel(cancel_event)
        pipelines.check_request_fits(request, model.family, model.source.location)
        task = pipelines.task_for(model.family, request.mode)
        controlnet_key, controlnet, control_model = controlnet_for(cache, model, request, on_progress, cancel_event)
        lora_entries = apply_loras(model, placement.options, request.loras, on_progress, cancel_event)
        check_cancel(cancel_event)
        takes_reference = pipelines.takes_reference(task)
        reference_start = time.perf_counter()
        reference = reference_slot.prepare(cache, model, request.reference if takes_reference else None,
                                           on_progress, cancel_event)
        if request.reference is not None:
            clock.reference = time.perf_counter() - reference_start
        check_cancel(cancel_event)
        pipe = base_model.pipeline_for(model, placement, task, controlnet_key, controlnet)
        scheduler = "LCM" if pipelines.runs_lcm(pipe) else request.scheduler  # LCM pipelines step only with it
        pipe.scheduler = make_scheduler(scheduler, model.scheduler_config, request.steps)
        vae_tiled = decoding.set_vae_tiling(pipe, model, placement, request.width * request.height)
        # A tiled decode would wrap each tile around itself: the VAE then decodes the whole
        # image's wrap itself (decode_wrapped) and only the UNet (and ControlNet) pad circularly.
        wrap_decode = request.seamless if vae_tiled else "NONE"
        mask = inpaint.feather_mask(request.mask_image, request.mask_blur) if request.mode == "INPAINT" else None
        tiny = None
        if tiny_preview and on_progress is not None and previews:
            tiny = cached_tiny_decoder(cache, model.family.name, tiny_preview_source)
        kwargs = _call_arguments(pipe, model, request, seed, on_progress, cancel_event, clock, previews, tiny)
        kwargs.update(pipelines.task_arguments(request, task, mask, controlled=controlnet_key is not None))
        kwargs = {k: v for k, v in kwargs.items() if k in inspect.signature(pipe.__call__).parameters}
        if reference is not None:  # computed once per image: every view and tile reuses them
            reference_start = time.perf_counter()
            kwargs["ip_adapter_image_embeds"] = reference_slot.image_embeds(
                model, reference, pipelines.runs_guidance(pipe, request.guidance_scale), placement.device,
                placement.offloads)
            clock.reference = (clock.reference or 0.0) + time.perf_counter() - reference_start
        if views is not None:  # the batch of views, in groups that fit beside the weights (or refused here)
            kwargs = views.arguments(pipe, kwargs, weight_bytes=model.weight_bytes,
                                     score_matrix=placement.options.attention_slicing or placement.device.type == "mps")
        unet = pipe.unet
        eager = (request.seamless != "NONE" or (recorder is not None and recorder.attention)
                 or getattr(views, "attention", "NONE") != "NONE" or reference is not None)
        if eager and hasattr(unet, "_orig_mod"):
            # compiled graphs know no circular padding, recording / cross-view processors nor IP-Adapters: run eagerly
            pipe.unet = unet._orig_mod
        hook = pipe.unet.register_forward_pre_hook(clock.on_unet_call)
        model.prompt_cache.on_encoded = clock.on_encoded
        patched_controlnet = (pipe.controlnet,) if controlnet_key is not None else ()
        packed = False
        try:
            patched = (pipe.unet, *patched_controlnet) + (() if wrap_decode != "NONE" else (pipe.vae,))
            packed = request.seamless != "NONE" and placement.packs_seamless(patched, model.weight_bytes)
            with seamless(patched, request.seamless, packed=packed):
                insight = contextlib.nullcontext()
                if recorder is not None:
                    insight = recorder.attach(pipe, kwargs, request.height, request.width)
                with insight, (views.around(pipe) if views is not None else contextlib.nullcontext()):
                    latents = pipe(**kwargs).images
                check_cancel(cancel_event)
                decode_start = time.perf_counter()
                if views is not None:  # one view at a time: the decode's peak is one view's, whatever their count
                    images = np.concatenate([decoding.decode(pipe, model, placement, latents[index:index + 1],
                                                             wrap=wrap_decode) for index in range(len(latents))])
                else:
                    images = decoding.decode(pipe, model, placement, latents, wrap=wrap_decode)
                clock.decode = time.perf_counter() - decode_start
                if views is not None:
                    views.images = images
                if recorder is not None:
                    recorder.finish(
                        images[0],
                        model.family.name,
                        lambda latent: decoding.decode(
                            pipe, model, placement, latent.to(placement.device), wrap=wrap_decode
                        )[0],
                        lambda: check_cancel(cancel_event),
                    )
        except Exception as error:
            if placement.options.torch_compile and type(error).__module__.startswith(_COMPILER_MODULES):
                detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                raise EngineError(
                    f"torch.compile could not compile the model ({type(error).__name__}: {detail}); "
                    "turn off 'Compile the Model' in the preferences."
                ) from error
            raise
        finally:
            model.prompt_cache.on_encoded = None
            hook.remove()
            if pipe.unet is not unet:
                pipe.unet = unet
            if packed:  # the seamless copies of packed weights stay: they count as resident weights from now on
                model.weight_bytes = placement.resident_bytes(model.base)
    check_cancel(cancel_event)

    rgba = np.ones((request.height, request.width, 4), dtype=np.float32)
    if mask is not None:
        assert request.init_image is not None  # validated
        rgba[..., :3] = inpaint.composite(images[0], request.init_image, mask)  # kept pixels: exactly the input
    else:
        rgba[..., :3] = images[0]
    recipe = _recipe(request, seed, model.family, placement)
    recipe.update(
        control=request.control,
        control_model=control_model,
        control_strength=float(request.control_strength),
        loras=lora_entries,
        mask=request.mode == "INPAINT",
        mask_blur=int(request.mask_blur),
        **model.where.recipe_fields(),
    )
    if views is not None:
        recipe["sync"] = views.recipe()
    if request.reference is not None:
        recipe["reference"] = reference_slot.recipe(request.reference, reference)
    ignored = _ignored(pipe, model, request)
    if request.reference is not None and request.reference.strength > 0 and not takes_reference:
        ignored.append("The reference image has no effect: the SD 2 depth-to-image pipeline takes no IP-Adapter; "
                       "use another model for a reference, or a ControlNet depth model.")
    if reference is not None and placement.options.torch_compile:
        ignored.append("Compile the Model does not apply to runs with a reference image: they run uncompiled.")
    return GenerationResult(image=rgba, seed=seed, recipe=recipe, timings=clock.timings(), ignored=ignored)


def _call_arguments(
    pipe: Any,
    model: LoadedModel,
    request: GenerationRequest,
    seed: int,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
    clock: RunClock,
    previews: bool,
    tiny_preview: Any,
) -> dict[str, Any]:
    family = model.family.name

    def preview(latents: Any) -> np.ndarray | None:
        return tiny_preview(latents) if tiny_preview is not None else latents_to_rgb(latents, family)

    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        clock.step_ends.append(time.perf_counter())
        check_cancel(cancel_event)
        if on_progress is not None:
            total = getattr(pipe, "num_timesteps", None) or request.steps
            on_progress(ProgressEvent(step + 1, int(total), preview(tensors["latents"]) if previews else None))
            check_cancel(cancel_event)
        return tensors

    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        # None (not "") lets SDXL use its zero negative embedding, as it was trained to.
        "negative_prompt": request.negative_prompt or None,
        "num_inference_steps": request.steps,
        # diffusers runs no unconditional pass when guidance_scale <= 1.
        "guidance_scale": float(request.guidance_scale),
        "generator": devices.seed_generator(seed),
        "output_type": "latent",  # decoded by decoding.decode (fp32 fallback, timings)
        "callback_on_step_end": on_step_end,
    }
    accepted = inspect.signature(pipe.__call__).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}  # LCM pipelines take no negative prompt


def _ignored(pipe: Any, model: LoadedModel, request: GenerationRequest) -> list[str]:
    """The request's settings that have no effect on this pipeline, one sentence each (for the artist)."""
    lcm = pipelines.runs_lcm(pipe)  # LatentConsistencyModelPipeline: no unconditional pass at all
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


def _recipe(request: GenerationRequest, seed: int, family: ModelFamily, placement: Placement) -> dict[str, Any]:
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
        "device": placement.device.type,
        "dtype": placement.dtype_name,
        **devices.reproducibility_fields(placement.device),
    }
