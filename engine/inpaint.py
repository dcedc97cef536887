"""INPAINT masks: feathering, and putting the kept pixels back exactly after the VAE.

numpy only. The diffusion model repaints the whole frame in latent space (8x8 pixels per
latent), and the VAE round trip changes every pixel a little; so after decoding, the
result is blended over the input with the (feathered) mask: where the mask is 0 the input
pixel comes back bit for bit, where it is 1 the generated one, in between a mix.
"""

from __future__ import annotations

import numpy as np


def gaussian_kernel(radius: int) -> np.ndarray:
    """A normalised 1-D Gaussian of ``2 * radius + 1`` taps, sigma = radius / 2 (nothing beyond ``radius``)."""
    if radius <= 0:
        return np.ones(1, dtype=np.float64)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / (radius / 2.0)) ** 2)
    return kernel / kernel.sum()


def feather_mask(mask: np.ndarray, blur: int) -> np.ndarray:
    """The mask (float32 ``(h, w)``, 1 = repaint) with its edge blurred by ``blur`` pixels.

    The blur is a separable Gaussian truncated at ``blur`` pixels (edges clamped), so a pixel
    farther than ``blur`` pixels (in x and y) from every non-zero mask pixel stays exactly 0:
    it is kept exactly. Values are clipped to 0..1; ``blur == 0`` returns the mask unchanged.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if blur <= 0:
        return mask.copy()
    kernel = gaussian_kernel(blur)
    out = mask.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(blur, blur) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        moved = np.moveaxis(padded, axis, -1)
        windows = np.lib.stride_tricks.sliding_window_view(moved, kernel.size, axis=-1)
        out = np.moveaxis(windows @ kernel, -1, axis)
    out[np.abs(out) < 1e-12] = 0.0  # exact zeros where no mask pixel reaches (float dust from the sums)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def composite(generated: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``original`` where ``mask`` is 0, ``generated`` where it is 1, linear in between (float32 RGB).

    Exact outside the mask: ``original * 1 + generated * 0`` is ``original`` bit for bit.
    """
    weight = np.asarray(mask, dtype=np.float32)[..., None]
    out = original[..., :3].astype(np.float32) * (1.0 - weight) + generated[..., :3].astype(np.float32) * weight
    keep = weight[..., 0] == 0.0
    out[keep] = original[..., :3][keep]  # not even -0.0 or rounding: the input's own values
    return out.astype(np.float32)
