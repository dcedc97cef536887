"""Seamless (tileable) output: circular padding per axis on every padded Conv2d, undone afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

_ConvForward = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _conv_forward(module: nn.Conv2d, wrap_x: bool, wrap_y: bool) -> _ConvForward:
    """A replacement for ``module._conv_forward`` that pads per axis itself, then convolves unpadded."""
    pad_y, pad_x = cast(tuple[int, int], module.padding)  # a tuple: checked by seamless()
    # F.pad takes (left, right, top, bottom) for the last two dimensions.
    x_pad = (pad_x, pad_x, 0, 0)
    y_pad = (0, 0, pad_y, pad_y)
    x_mode = "circular" if wrap_x else "constant"
    y_mode = "circular" if wrap_y else "constant"

    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        padded = F.pad(F.pad(x, x_pad, mode=x_mode), y_pad, mode=y_mode)
        return F.conv2d(padded, weight, bias, module.stride, 0, module.dilation, module.groups)

    return forward


@contextmanager
def seamless(models: Iterable[nn.Module], axes: str) -> Iterator[int]:
    """Make ``models`` wrap around along ``axes`` (``X``, ``Y``, ``BOTH``; ``NONE`` does nothing).

    Every ``nn.Conv2d`` with symmetric integer zero padding gets an instance-level
    ``_conv_forward`` that pads circularly along the chosen axes and with zeros
    along the others. On exit the instance attributes are deleted, so the class
    method (the normal behaviour) is back even if the run raised.

    Yields:
        How many convolutions were patched.
    """
    wrap_x = axes in ("X", "BOTH")
    wrap_y = axes in ("Y", "BOTH")
    patched: list[nn.Conv2d] = []
    try:
        if wrap_x or wrap_y:
            for model in models:
                for module in model.modules():
                    if (
                        isinstance(module, nn.Conv2d)
                        and isinstance(module.padding, tuple)
                        and any(module.padding)
                        and module.padding_mode == "zeros"
                        and "_conv_forward" not in vars(module)
                    ):
                        module._conv_forward = _conv_forward(module, wrap_x, wrap_y)  # type: ignore[method-assign, assignment]
                        patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            del module._conv_forward
