"""Seamless (tileable) output: circular padding per axis on every padded Conv2d, undone afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .packed_weights import PackedConvForward

_ConvForward = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _conv_forward(module: nn.Conv2d, wrap_x: bool, wrap_y: bool, previous: object, packed: bool) -> _ConvForward:
    """A replacement for ``module._conv_forward`` that pads per axis itself, then convolves unpadded
    (with packed weights when ``packed`` and ``previous``, the forward it replaces, packs them: its unpadded
    twin, packed at the first seamless run and kept)."""
    pad_y, pad_x = cast(tuple[int, int], module.padding)  # a tuple: checked by seamless()
    # F.pad takes (left, right, top, bottom) for the last two dimensions.
    x_pad = (pad_x, pad_x, 0, 0)
    y_pad = (0, 0, pad_y, pad_y)
    x_mode = "circular" if wrap_x else "constant"
    y_mode = "circular" if wrap_y else "constant"

    twin = previous.unpadded() if packed and isinstance(previous, PackedConvForward) else None

    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        padded = F.pad(F.pad(x, x_pad, mode=x_mode), y_pad, mode=y_mode)
        if twin is not None:
            return twin(padded, weight, bias)
        return F.conv2d(padded, weight, bias, module.stride, 0, module.dilation, module.groups)

    forward.wraps = True  # type: ignore[attr-defined]
    return forward


@contextmanager
def seamless(models: Iterable[nn.Module], axes: str, *, packed: bool = False) -> Iterator[int]:
    """Make ``models`` wrap around along ``axes`` (``X``, ``Y``, ``BOTH``; ``NONE`` does nothing);
    ``packed``: packed convolutions run packed (only where ``Placement.packs_seamless`` said their copies fit),
    else with ``F.conv2d``.

    Every ``nn.Conv2d`` with symmetric integer zero padding gets an instance-level
    ``_conv_forward`` that pads circularly along the chosen axes and with zeros
    along the others. On exit each convolution gets back the ``_conv_forward`` it had
    (the class method, or an instance one such as ``packed_weights.PackedConvForward``), even if the run raised.

    Yields:
        How many convolutions were patched.
    """
    wrap_x = axes in ("X", "BOTH")
    wrap_y = axes in ("Y", "BOTH")
    patched: list[tuple[nn.Conv2d, _ConvForward | None]] = []
    try:
        if wrap_x or wrap_y:
            for model in models:
                for module in model.modules():
                    if (
                        isinstance(module, nn.Conv2d)
                        and isinstance(module.padding, tuple)
                        and any(module.padding)
                        and module.padding_mode == "zeros"
                    ):
                        previous = vars(module).get("_conv_forward")
                        if getattr(previous, "wraps", False):
                            continue  # already seamless (a nested call)
                        module._conv_forward = _conv_forward(module, wrap_x, wrap_y, previous, packed)  # type: ignore[method-assign, assignment]
                        patched.append((module, previous))
        yield len(patched)
    finally:
        for module, previous in reversed(patched):
            if previous is None:
                del module._conv_forward
            else:
                module._conv_forward = previous  # type: ignore[method-assign]


def wrap_margin(vae: nn.Module) -> int:
    """Latent pixels of wrapped context on each side of a tiled seamless decode: one tile.

    Measured on the tiny model (tests: seamless with VAE tiling forced on): half a tile
    leaves the wrap seam about 1.3x an interior boundary, one tile makes it ordinary
    (about 1.0-1.1x). It costs decoding one tile more per wrapped side.
    """
    return max(1, int(getattr(vae, "tile_latent_min_size", 8)))


def _close_wrap(decoded: torch.Tensor, margin: int, size: int, dim: int) -> torch.Tensor:
    """``[copy of the end | image | copy of the start]`` along ``dim`` -> the image, its end blended into the copy.

    The leading copy was decoded right before the image's start, so it runs continuously
    into it; the image's own end fades into that copy, and the wrap (end -> start) is as
    continuous as the decode inside one tile.
    """
    image = decoded.narrow(dim, margin, size).clone()
    if margin == 0:
        return image
    copy = decoded.narrow(dim, 0, margin)
    shape = [1] * decoded.dim()
    shape[dim] = margin
    ramp = ((torch.arange(margin, device=decoded.device, dtype=decoded.dtype) + 0.5) / margin).view(shape)
    end = image.narrow(dim, size - margin, margin)
    end.mul_(1 - ramp).add_(copy * ramp)
    return image


def decode_wrapped(vae: nn.Module, latents: torch.Tensor, axes: str) -> torch.Tensor:
    """A tiled VAE decode that wraps across the whole image along ``axes`` (not around each tile).

    Circular padding inside the VAE would wrap each *tile* around itself, so a tiled
    decode runs unpatched (zero padding, as tiles always do) on the latent extended
    with a copy of the opposite edges; the copies are cut off again after the image's
    ends were blended into them, as tiles are blended into their neighbours.
    """
    wrap_x = axes in ("X", "BOTH")
    wrap_y = axes in ("Y", "BOTH")
    margin = wrap_margin(vae)
    height, width = latents.shape[-2:]
    my = min(margin, height) if wrap_y else 0
    mx = min(margin, width) if wrap_x else 0
    extended = latents
    if my:
        extended = torch.cat([extended[..., -my:, :], extended, extended[..., :my, :]], dim=-2)
    if mx:
        extended = torch.cat([extended[..., -mx:], extended, extended[..., :mx]], dim=-1)
    decoded = vae.decode(extended, return_dict=False)[0]
    scale = decoded.shape[-1] // extended.shape[-1]
    decoded = _close_wrap(decoded, mx * scale, width * scale, decoded.dim() - 1)
    return _close_wrap(decoded, my * scale, height * scale, decoded.dim() - 2)


@contextmanager
def seamless_downsamples(models: Iterable[nn.Module], axes: str) -> Iterator[int]:
    """Make the stride-2 downsamplings that pad only their right and bottom edge (diffusers' ``Downsample2D`` with
    ``padding=0``, as in the VAE encoder) wrap along ``axes``: the zero column/row they append becomes a copy of
    the first one (circular padding by one), so an encoded seamless image stays a torus. ``seamless`` leaves
    these convolutions alone (they have no padding of their own). Yields how many were patched; undone on exit."""
    from diffusers.models.downsampling import Downsample2D

    wrap_x = axes in ("X", "BOTH")
    wrap_y = axes in ("Y", "BOTH")

    def wrap_pad(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        padded = args[0].clone()
        if wrap_x:
            padded[..., :, -1] = padded[..., :, 0]
        if wrap_y:
            padded[..., -1, :] = padded[..., 0, :]
        return (padded, *args[1:])

    hooks = []
    try:
        if wrap_x or wrap_y:
            for model in models:
                for module in model.modules():
                    if isinstance(module, Downsample2D) and module.use_conv and module.padding == 0:
                        hooks.append(module.conv.register_forward_pre_hook(wrap_pad))
        yield len(hooks)
    finally:
        for hook in hooks:
            hook.remove()
