"""A cheap per-step preview: latents -> RGB by a fixed linear map (no VAE decode)."""

from __future__ import annotations

import numpy as np
import torch

# Least-squares fits of RGB on the 4 latent channels, as used by the community
# previewers (rows: latent channel; columns: R, G, B). They apply to the scaled
# latents the denoising loop works on.
_SD_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SD_BIAS = (0.0, 0.0, 0.0)
_SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)


def latents_to_rgb(latents: torch.Tensor, family: str) -> np.ndarray | None:
    """First image of ``latents`` (B, 4, h, w) as float32 (h, w, 3) in 0..1, top row first.

    Returns None for latent spaces it has no map for (not 4 channels).
    """
    if latents.ndim != 4 or latents.shape[1] != 4:
        return None
    factors, bias = (_SDXL_FACTORS, _SDXL_BIAS) if family == "SDXL" else (_SD_FACTORS, _SD_BIAS)
    sample = latents[0].detach().to(device="cpu", dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", sample, torch.tensor(factors)) + torch.tensor(bias)
    return ((rgb + 1.0) * 0.5).clamp_(0.0, 1.0).numpy()
