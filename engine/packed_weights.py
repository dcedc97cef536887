"""Convolution and linear weights in oneDNN's own layout, packed once instead of at every call (CPU).

Eager PyTorch hands oneDNN each weight in PyTorch's layout, and oneDNN reorders it into
its blocked layout at *every* call before it computes. For a UNet's deep levels that
reorder costs more than the work: a 1280-channel 3x3 convolution on a 4x4 latent moves
29 MB of bf16 weights for 0.9 GFLOP. Packing each weight once (the same ``mkldnn`` ops
inductor's weight freezing emits) and calling the op with the packed weight:

* **Convolutions** (fp32 and bf16) run the same kernel on the same numbers wherever eager
  torch itself runs oneDNN's: with channels-last inputs (the engine's CPU default) and
  CFG's batch of 2 the output is bit-identical (tested). At batch 1 (guidance <= 1) eager
  torch runs small fp32 convolutions with its own kernel, and on NCHW inputs other
  kernels for some shapes: there the packed path differs by float rounding. SD-1.5 3x3
  convolutions ran 1.2x (32x32) to 1.6x (4x4, bf16 on AMX) and up to 3.5x (4x4, fp32
  held to AVX2) faster (``bench/conv_sizes.py``).
* **Linear layers** in bf16 only: 27 % less time over the SD-1.5 UNet's shapes, where
  for a few shapes eager torch uses another matmul kernel, so there the result differs by
  one bf16 rounding step. In fp32 it gained 7 % and is left as it was.

The cost is memory: one packed copy of those weights beside the module's own
(``packable_bytes``: the engine packs only when that still leaves room, see
``Placement.pack_weights``), and only where it pays: the UNet and ControlNets at their
small latents, not the VAE or the x4 upscaler (large images reuse each weight over many
pixels: measured no faster).

A convolution gets an instance-level ``_conv_forward`` (the hook ``nn.Conv2d`` itself
calls), a linear layer an instance-level ``forward``; so LoRA adapters wrapping a layer,
``seamless`` (which swaps its own convolution in and back) and ``module.to(...)`` keep
working: a weight that changed (another dtype, new data, an in-place update) is packed
again at its next call. Anything the packed ops do not cover (another device, a
gradient, a dtype mismatch) runs ``F.conv2d`` / ``F.linear`` as before.
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

CONV_DTYPES = (torch.float32, torch.bfloat16)
LINEAR_DTYPES = (torch.bfloat16,)  # fp32: 7 % faster, not bit-identical: not worth a second copy
_X86_CAPABILITIES = ("AVX2", "AVX512", "AMX")


def supported() -> bool:
    """Can this torch pack weights for this CPU: oneDNN present, an x86 CPU (where it was measured)."""
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return False
    return (
        torch.backends.mkldnn.is_available()
        and capability.startswith(_X86_CAPABILITIES)
        and all(
            hasattr(torch.ops.mkldnn, op)
            for op in ("_convolution_pointwise", "_reorder_convolution_weight", "_linear_pointwise",
                       "_reorder_linear_weight")
        )
    )


class _PackedWeight:
    """One weight's packed copy, made again whenever the weight is not the one it was made from."""

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.storage: StorageWeakRef | None = None  # the weight's memory, to know it was not replaced
        self.packed: torch.Tensor | None = None

    def get(self, weight: torch.Tensor, pack: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        # Same memory (still alive, so its address was not reused), not written to since, same dtype and shape.
        key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))
        if self.packed is None or key != self.key or self.storage is None or self.storage.expired():
            self.packed = None  # let the old copy go before the new one is made
            self.packed = pack(weight.detach())
            self.key, self.storage = key, StorageWeakRef(weight.untyped_storage())
        return self.packed

    @property
    def bytes(self) -> int:
        return 0 if self.packed is None else self.packed.numel() * self.packed.element_size()


@functools.cache
def onednn_runs_bf16() -> bool:
    """Does oneDNN take bf16 weights on this CPU? Not on AVX2-only CPUs (nor with ``ONEDNN_MAX_CPU_ISA``
    capped below AVX-512): its reorders then raise, so bf16 layers keep eager torch, which emulates bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without oneDNN's bf16 query: nothing packed in bf16
        return False


def _packs_dtype(dtype: torch.dtype, dtypes: tuple[torch.dtype, ...]) -> bool:
    return dtype in dtypes and (dtype != torch.bfloat16 or onednn_runs_bf16())


def _eligible(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtypes: tuple[torch.dtype, ...]
) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype
        and _packs_dtype(weight.dtype, dtypes)
        and (bias is None or bias.dtype == weight.dtype)
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


class PackedConvForward:
    """``nn.Conv2d._conv_forward`` with the weight packed once (see the module docstring)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)  # type: ignore[arg-type]  # a tuple: checked by can_pack()
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.weight = _PackedWeight()
        self.seamless: PackedConvForward | None = None  # the unpadded twin ``tiling.seamless`` runs, once made

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.dim() != 4 or not _eligible(x, weight, bias, CONV_DTYPES):
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        packed = self.weight.get(weight, lambda w: torch.ops.mkldnn._reorder_convolution_weight(
            w, self.padding, self.stride, self.dilation, self.groups, list(x.shape)))
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed, bias, self.padding, self.stride, self.dilation, self.groups, "none", [], ""
        )

    def unpadded(self) -> PackedConvForward:
        """The same convolution without its zero padding, for an input padded beforehand (``tiling.seamless``).

        Made once and kept (``seamless``): oneDNN packs a weight for one padding, so a seamless run needs its
        own packed copy, and every later seamless run reuses it (its bytes count in ``packed_bytes`` and
        ``packable_bytes(installed=True)``; ``seamless_bytes`` says what making the twins would add)."""
        if self.seamless is None:
            self.seamless = self.__deepcopy__({})
            self.seamless.padding = [0, 0]
        return self.seamless

    def __deepcopy__(self, memo: dict[int, Any]) -> PackedConvForward:
        """A copied module packs its own weights (a packed oneDNN tensor cannot be deep-copied)."""
        fresh = copy.copy(self)
        fresh.weight = _PackedWeight()
        fresh.seamless = None
        return fresh


class PackedLinearForward:
    """``nn.Linear.forward`` with the weight packed once (bf16; see the module docstring)."""

    def __init__(self, linear: nn.Linear) -> None:
        self.module = weakref.ref(linear)  # no module -> forward -> module cycle: freeing a model is immediate
        self.weight = _PackedWeight()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        module = self.module()
        assert module is not None  # called through the module
        weight, bias = module.weight, module.bias
        if not _eligible(x, weight, bias, LINEAR_DTYPES) or x.shape[-1] != weight.shape[1]:
            return F.linear(x, weight, bias)
        rows = x.numel() // x.shape[-1]
        packed = self.weight.get(weight, lambda w: torch.ops.mkldnn._reorder_linear_weight(w, rows))
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    def __deepcopy__(self, memo: dict[int, Any]) -> PackedLinearForward:
        """The copy belongs to the copied module (deepcopy records it in ``memo`` before copying its attributes)."""
        module = self.module()
        fresh = copy.copy(self)
        fresh.module = weakref.ref(memo.get(id(module), module))
        fresh.weight = _PackedWeight()
        return fresh


_HOOKS = {nn.Conv2d: ("_conv_forward", PackedConvForward), nn.Linear: ("forward", PackedLinearForward)}


def _hook(module: nn.Module) -> tuple[str, type] | None:
    for kind, hook in _HOOKS.items():
        if isinstance(module, kind):
            return hook
    return None


def can_pack(module: nn.Module) -> bool:
    hook = _hook(module)
    if hook is None or hook[0] in vars(module):
        return False
    if isinstance(module, nn.Conv2d):
        return isinstance(module.padding, tuple) and module.padding_mode == "zeros"
    return True


def _installed(module: nn.Module) -> Any:
    hook = _hook(module)
    forward = vars(module).get(hook[0]) if hook is not None else None
    return forward if isinstance(forward, (PackedConvForward, PackedLinearForward)) else None


def pack(models: Iterable[nn.Module]) -> int:
    """Give every plain ``nn.Conv2d`` and ``nn.Linear`` in ``models`` a packed forward; returns how many
    (0 where unsupported). The packing itself happens at each layer's first call (it needs the input's shape)."""
    if not supported():
        return 0
    count = 0
    for model in models:
        for module in model.modules():
            hook = _hook(module)
            if hook is not None and can_pack(module):
                setattr(module, hook[0], hook[1](module))
                count += 1
    return count


def unpack(models: Iterable[nn.Module]) -> int:
    """Undo ``pack``: the layers call ``F.conv2d`` / ``F.linear`` again and the packed copies are freed;
    returns how many."""
    count = 0
    for model in models:
        for module in model.modules():
            if _installed(module) is not None:
                delattr(module, _hook(module)[0])  # type: ignore[index]
                count += 1
    return count


def _will_pack(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    dtypes = CONV_DTYPES if isinstance(module, nn.Conv2d) else LINEAR_DTYPES
    return isinstance(weight, torch.Tensor) and _packs_dtype(weight.dtype, dtypes)


def _copies(forward: Any) -> int:
    """How many packed copies an installed forward holds once run: its own, and a seamless twin once made."""
    return 1 + (getattr(forward, "seamless", None) is not None)


def packable_bytes(models: Iterable[nn.Module], *, installed: bool = False) -> int:
    """Memory the packed copies will take once every layer ran in its present dtype: of those ``pack``
    would give a packed forward (``installed=True``: of those it gave one, seamless twins made included)."""
    total = 0
    for model in models:
        for module in model.modules():
            forward = _installed(module)
            if (forward is not None if installed else can_pack(module)) and _will_pack(module):
                copies = _copies(forward) if installed else 1
                total += copies * module.weight.numel() * module.weight.element_size()
    return total


def seamless_bytes(models: Iterable[nn.Module]) -> int:
    """Memory a seamless run would add to ``packable_bytes(installed=True)``: the unpadded twins of the packed
    padded convolutions (``PackedConvForward.unpadded``) not made yet."""
    return sum(
        module.weight.numel() * module.weight.element_size()
        for model in models
        for module in model.modules()
        if isinstance(forward := _installed(module), PackedConvForward)
        and forward.seamless is None and any(forward.padding) and _will_pack(module)
    )


def packed_bytes(models: Iterable[nn.Module]) -> int:
    """Memory the packed copies take now (only layers that have run are packed), seamless twins included."""
    total = 0
    for model in models:
        for module in model.modules():
            forward = _installed(module)
            if forward is not None:
                twin = getattr(forward, "seamless", None)
                total += forward.weight.bytes + (twin.weight.bytes if twin is not None else 0)
    return total
