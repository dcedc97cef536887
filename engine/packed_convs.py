"""Convolutions with their weights in oneDNN's own layout, packed once instead of at every call (CPU).

An eager ``F.conv2d`` on the CPU hands oneDNN a plain weight tensor, which oneDNN
reorders into its blocked layout at *every* call before it convolves. For a UNet's deep
levels that reorder costs more than the convolution: a 1280-channel 3x3 convolution on
a 4x4 latent moves 29 MB of bf16 weights for 0.9 GFLOP. Packing each weight once (the
same ``mkldnn`` ops inductor's weight freezing emits) and calling the convolution with
the packed weight runs the same kernel on the same numbers: with channels-last inputs
(the engine's CPU default) the output is bit-identical (tested, fp32 and bf16); on NCHW
inputs eager torch picks other kernels for some shapes, so there it differs by float
rounding. On this project's CPUs the SD-1.5 3x3 convolutions ran 1.2x (32x32) to
1.6x (4x4, bf16 on AMX) and up to 3.5x (4x4, fp32 limited to AVX2) faster
(``bench/conv_sizes.py``). The cost is memory: one packed copy of every convolution's
weights beside the module's own (``packable_bytes``: the engine packs only when that
still leaves room, see ``Engine._pack_conv_weights``).

Applied per ``nn.Conv2d`` as an instance-level ``_conv_forward`` (the hook ``nn.Conv2d``
itself calls), so LoRA adapters wrapping a convolution, ``seamless`` (which swaps its
own in and back) and ``module.to(...)`` keep working: a weight that changed (another
dtype, new data, an in-place update) is packed again at its next call. Anything the
packed op does not cover (another device, a gradient, a dtype mismatch) runs
``F.conv2d`` as before.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

PACKED_DTYPES = (torch.float32, torch.bfloat16)  # measured; fp16 on a CPU is not a precision the engine offers
_X86_CAPABILITIES = ("AVX2", "AVX512", "AVX512_BF16", "AVX512_VNNI", "AMX")


def supported() -> bool:
    """Can this torch pack convolution weights for this CPU: oneDNN present, an x86 CPU (where it was measured)."""
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return False
    return (
        torch.backends.mkldnn.is_available()
        and capability.startswith(_X86_CAPABILITIES)
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_convolution_weight")
    )


class PackedConvForward:
    """``nn.Conv2d._conv_forward`` with the weight packed once (see the module docstring)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)  # type: ignore[arg-type]  # a tuple: checked by can_pack()
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self._key: tuple[Any, ...] | None = None
        self._storage: StorageWeakRef | None = None  # the packed weight's memory, to know it was not replaced
        self._packed: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or x.dim() != 4
            or x.dtype != weight.dtype
            or weight.dtype not in PACKED_DTYPES
            or (bias is not None and bias.dtype != weight.dtype)
            or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        ):
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        # Same memory (still alive, so its address was not reused), not written to since, same dtype and shape.
        key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))
        if key != self._key or self._storage is None or self._storage.expired():
            self._packed = None  # let the old copy go before the new one is made
            self._packed = torch.ops.mkldnn._reorder_convolution_weight(
                weight.detach(), self.padding, self.stride, self.dilation, self.groups, list(x.shape)
            )
            self._key, self._storage = key, StorageWeakRef(weight.untyped_storage())
        return torch.ops.mkldnn._convolution_pointwise(
            x, self._packed, bias, self.padding, self.stride, self.dilation, self.groups, "none", [], ""
        )

    def unpadded(self) -> PackedConvForward:
        """The same convolution without its zero padding, for an input padded beforehand (``tiling.seamless``)."""
        fresh = self.__deepcopy__({})
        fresh.padding = [0, 0]
        return fresh

    @property
    def packed_bytes(self) -> int:
        packed = self._packed
        return 0 if packed is None else packed.numel() * packed.element_size()

    def __deepcopy__(self, memo: dict[int, Any]) -> PackedConvForward:
        """A copied module packs its own weights (a packed oneDNN tensor cannot be deep-copied)."""
        fresh = copy.copy(self)
        fresh._key, fresh._storage, fresh._packed = None, None, None
        return fresh


def can_pack(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and isinstance(module.padding, tuple)
        and module.padding_mode == "zeros"
        and "_conv_forward" not in vars(module)
    )


def pack(models: Iterable[nn.Module]) -> int:
    """Give every plain ``nn.Conv2d`` in ``models`` a packed forward; returns how many (0 where unsupported).

    The packing itself happens at each convolution's first call (it needs the input's shape).
    """
    if not supported():
        return 0
    count = 0
    for model in models:
        for module in model.modules():
            if can_pack(module):
                module._conv_forward = PackedConvForward(module)  # type: ignore[method-assign, assignment, arg-type]
                count += 1
    return count


def unpack(models: Iterable[nn.Module]) -> int:
    """Undo ``pack``: the convolutions call ``F.conv2d`` again and the packed copies are freed; returns how many."""
    count = 0
    for model in models:
        for module in model.modules():
            if isinstance(vars(module).get("_conv_forward"), PackedConvForward):
                del module._conv_forward
                count += 1
    return count


def packable_bytes(models: Iterable[nn.Module], *, installed: bool = False) -> int:
    """Memory the packed copies will take once every convolution ran: of those ``pack`` would
    give a packed forward (``installed=True``: of those it gave one)."""
    return sum(
        module.weight.numel() * module.weight.element_size()
        for model in models
        for module in model.modules()
        if (isinstance(vars(module).get("_conv_forward"), PackedConvForward) if installed else can_pack(module))
    )


def packed_bytes(models: Iterable[nn.Module]) -> int:
    """Memory the packed copies take now (only convolutions that have run are packed)."""
    return sum(
        forward.packed_bytes
        for model in models
        for module in model.modules()
        if isinstance(forward := vars(module).get("_conv_forward"), PackedConvForward)
    )
