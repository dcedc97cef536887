"""Latents -> pixels with the loaded model's VAE: half precision with an fp32 fallback, and VAE tiling
(``EngineOptions.vae_tiling``: ``AUTO`` tiles only where an untiled decode would not fit beside the model).

Imports torch; reached only through ``engine.py``, once an engine is asked for.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from . import devices
from .base_model import LoadedModel
from .errors import EngineError
from .placement import Placement
from .tiling import decode_wrapped

log = logging.getLogger(__name__)

# VAE tiling AUTO: tile when an untiled decode would take more than this share of the memory the
# device has beside the model's weights. The decode's peak, measured for the SD/SDXL VAE on the CPU
# in fp32 (bench/): +0.78 GB at 512x512, +3.0 GB at 1024x1024, i.e. ~3 KB per output pixel.
VAE_DECODE_BYTES_PER_PIXEL_FP32 = 3072
VAE_TILING_MEMORY_SHARE = 0.5
VAE_TILING_AUTO_PIXELS = 1024 * 1024  # where the device's memory is unknown: tile above this many pixels


def vae_tiling_needed(pixels: int, itemsize: int, total_bytes: int | None, weight_bytes: int) -> bool:
    """Would an untiled VAE decode of ``pixels`` output pixels need tiling to fit (VAE tiling ``AUTO``)?

    Args:
        pixels: width x height of the image.
        itemsize: bytes per value of the VAE's dtype (4 for fp32, 2 for fp16/bf16).
        total_bytes: the device's memory (``devices.memory_budget``), None if unknown.
        weight_bytes: what the model's weights take on that device.
    """
    if total_bytes is None:
        return pixels > VAE_TILING_AUTO_PIXELS
    need = pixels * VAE_DECODE_BYTES_PER_PIXEL_FP32 * itemsize / 4
    return need > VAE_TILING_MEMORY_SHARE * max(total_bytes - weight_bytes, 0)


def needs_vae_tiling(model: LoadedModel, placement: Placement, pixels: int) -> bool:
    """VAE tiling ``AUTO`` for ``model``: would an untiled decode of ``pixels`` not fit beside it?"""
    vae = model.base.vae
    fp32 = placement.options.vae_precision == "FP32" or model.vae_fp32
    itemsize = 4 if fp32 else torch.finfo(vae.dtype).bits // 8
    return vae_tiling_needed(pixels, itemsize, devices.memory_budget(placement.device), model.weight_bytes)


def set_vae_tiling(pipe: Any, model: LoadedModel, placement: Placement, pixels: int) -> bool:
    """Turn the VAE's tiling on or off for an image of ``pixels``; True when it is on."""
    mode = placement.options.vae_tiling
    if mode == "ON" or (mode == "AUTO" and needs_vae_tiling(model, placement, pixels)):
        pipe.vae.enable_tiling()
        return True
    pipe.vae.disable_tiling()
    return False


def decode(pipe: Any, model: LoadedModel, placement: Placement, latents: Any, wrap: str = "NONE") -> np.ndarray:
    """Latents -> float32 (batch, h, w, 3) images in 0..1, as the pipeline itself would decode them.

    ``wrap``: the seamless axes a tiled decode must wrap across (see ``tiling.decode_wrapped``).

    Half precision first (unless ``vae_precision="FP32"`` or this model already overflowed);
    a decode with NaN/inf in it is repeated in fp32, and the model keeps decoding in fp32.

    Raises:
        EngineError: the fp32 decode is not finite either (the denoising itself overflowed).
    """
    vae = pipe.vae
    half = vae.dtype != torch.float32
    upcast = half and (placement.options.vae_precision == "FP32" or model.vae_fp32)
    image = _vae_decode(pipe, model, latents, upcast=upcast, wrap=wrap)
    if half and not upcast and not bool(torch.isfinite(image).all()):
        image = _vae_decode(pipe, model, latents, upcast=True, wrap=wrap)
        if bool(torch.isfinite(image).all()):
            log.warning("The VAE overflowed in %s: this model decodes in float32 from now on.", vae.dtype)
            model.vae_fp32 = True
    if not bool(torch.isfinite(image).all()):
        raise EngineError(
            f"The model produced invalid values (NaN or infinity) in {placement.dtype_name}; "
            "set the precision to FP32 (or BF16) in the preferences and generate again."
        )
    watermark = getattr(pipe, "watermark", None)  # SDXL pipelines, when invisible-watermark is installed
    if watermark is not None:
        image = watermark.apply_watermark(image)
    images = pipe.image_processor.postprocess(image, output_type="np", do_denormalize=[True] * image.shape[0])
    if placement.offloads:
        pipe.maybe_free_model_hooks()  # the pipeline offloaded before our decode; offload the VAE too
    return images


def _vae_decode(pipe: Any, model: LoadedModel, latents: Any, *, upcast: bool, wrap: str = "NONE") -> Any:
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
