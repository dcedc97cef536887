"""A sharp live preview: the denoising latents decoded each step by a tiny VAE (TAESD / TAESDXL).

Optional (a preference): the linear latent -> RGB map (``preview.py``) stays the default,
and the fallback when the tiny decoder is not on disk and may not be downloaded (offline).
The tiny decoders (``AutoencoderTiny``, about 10 MB, by Ollin Boer Bohan) are
downloaded like any model, into the same cache, only with online access.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import hub
from .model_cache import ModelCache

log = logging.getLogger(__name__)

SLOT = "preview_decoder"  # the model cache's slot: one tiny decoder per (family, source)
PREVIEW_DECODERS = ("LINEAR", "TAESD")
TINY_DECODER_REPOS = {"SD1": "madebyollin/taesd", "SD2": "madebyollin/taesd", "SDXL": "madebyollin/taesdxl"}
_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


class TinyDecoderPreview:
    """Latents (B, 4, h, w) as the denoising loop holds them -> float32 (8h, 8w, 3) RGB in 0..1, first image."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae.eval()

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        vae = self.vae
        # TAESD is trained on the scaled latents the loop works on (its scaling_factor is 1).
        image = vae.decode(latents[:1].to(vae.device, vae.dtype), return_dict=False)[0]
        return ((image[0].float().permute(1, 2, 0) + 1.0) * 0.5).clamp_(0.0, 1.0).cpu().numpy()


def tiny_decoder_folder(family: str, *, cache_dir: str | None, offline: bool) -> Path | None:
    """The tiny decoder for ``family`` on disk, downloaded first when allowed; None where it cannot be had."""
    repo = TINY_DECODER_REPOS.get(family)
    if repo is None:
        return None
    cached = hub.cached_snapshot(repo, cache_dir)
    if cached is not None and (cached / "config.json").is_file():
        return cached
    if hub.hub_offline(offline):
        return None
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, cache_dir=cache_dir, allow_patterns=_FILES))


def load_tiny_decoder(folder: str | Path, device: torch.device, dtype: torch.dtype) -> TinyDecoderPreview:
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny.from_pretrained(str(folder), torch_dtype=dtype)
    return TinyDecoderPreview(vae.to(device))


def cached_tiny_decoder(cache: ModelCache, family: str, source: str | None) -> TinyDecoderPreview | None:
    """The tiny decoder for ``family`` (``source``: a local ``AutoencoderTiny`` folder instead), kept in the
    cache; None where it cannot be had (not on disk and offline): the caller previews linearly."""
    key = (family, source)
    decoder = cache.get(SLOT, key)
    if decoder is not None:
        return decoder
    placement = cache.placement
    options = placement.options
    folder = source or tiny_decoder_folder(family, cache_dir=options.cache_dir, offline=options.offline)
    if folder is None:
        log.warning("No tiny preview decoder for %s on disk and offline: using the linear preview.", family)
        return None
    return cache.load(SLOT, key, lambda: load_tiny_decoder(folder, placement.device, placement.dtype), keep=None)
