"""Where and how the models run: the device and dtype, and the memory and speed modes of ``EngineOptions``
(CPU offload, attention slicing, channels-last, packed weights, ``torch.compile``) applied to what is loaded.

Imports torch (through ``devices``); reached only through ``engine.py``, once an engine is asked for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from . import compiling, devices, packed_weights
from .request import EngineOptions

if TYPE_CHECKING:
    from .sources import ModelSource

log = logging.getLogger(__name__)

# Convolution/linear weights are packed (a second copy, packed_weights.py) only while all weights, packed copies
# included, take at most this share of the RAM: the rest is for activations, Blender and the system.
PACKED_WEIGHTS_MEMORY_SHARE = 0.5


class Placement:
    """The device, dtype and speed modes every model of one engine is placed with."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.device = devices.resolve_device(options.device)
        self.dtype = devices.resolve_dtype(options.precision, self.device)

    @property
    def dtype_name(self) -> str:
        return devices.dtype_name(self.dtype)

    @property
    def offloads(self) -> bool:
        """CPU offload is asked for and applies: on CUDA only."""
        return self.options.cpu_offload and self.device.type == "cuda"

    @property
    def channels_last(self) -> bool:
        """The UNet/VAE layout: ``AUTO`` is channels-last on the CPU only (measured there; not on GPUs)."""
        option = self.options.channels_last
        return option == "ON" or (option == "AUTO" and self.device.type == "cpu")

    @property
    def packs_weights(self) -> bool:
        """Pack convolution/linear weights once (``packed_weights``): CPU only, and not under ``torch.compile``,
        whose weight freezing packs them itself."""
        return self.options.pack_weights and self.device.type == "cpu" and not self.options.torch_compile

    def cache_key(self, source: ModelSource) -> tuple[str, str, str, str]:
        """What names ``source`` in the model cache: the same files on another device or dtype are another model."""
        return (source.kind, source.location, str(self.device), self.dtype_name)

    def place(self, pipe: Any, *, pack_weights: bool = True) -> None:
        """Move to the device and apply the memory and speed modes (``pack_weights``: the UNet's, where on)."""
        pipe.set_progress_bar_config(disable=True)
        if self.offloads:
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
        if pack_weights:
            # The UNet only: the VAE decode measured the same packed or not (large images: the weights are reused
            # over many pixels), so a packed copy of it would only cost memory.
            self.pack_weights((pipe.unet,), self.resident_bytes(pipe))
        if self.options.torch_compile:
            # Compiled lazily: the first step at each new image size pays for it (timings["first_step"]),
            # once per cache folder: later runs load the compiled code (compiling.py, bench/).
            compiling.use_cache_folder(self.options.compile_cache_dir)
            pipe.unet = compiling.compile_module(pipe.unet, self.device)

    def place_beside(self, module: Any, resident_bytes: int) -> None:
        """Place a model that runs beside the loaded pipeline (a ControlNet) as its UNet is placed;
        ``resident_bytes``: what the pipeline's weights already take."""
        if not self.offloads:
            module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        module_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        self.pack_weights((module,), resident_bytes + module_bytes)

    def resident_bytes(self, pipe: Any) -> int:
        """Bytes of weights that stay on the device while the VAE decodes (with CPU offload: the UNet's at most)."""
        if self.offloads:
            modules = [pipe.unet]
        else:
            modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
        weights = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
        return weights + packed_weights.packable_bytes(modules, installed=True)  # seamless copies made included

    def pack_weights(self, modules: tuple[Any, ...], resident_bytes: int) -> None:
        """Pack the convolution and linear weights of ``modules`` (``packed_weights``) where the RAM holds the copy:
        ``resident_bytes`` (what is loaded now) plus the packed copies within ``PACKED_WEIGHTS_MEMORY_SHARE``."""
        if self.packs_weights and self._room_for(packed_weights.packable_bytes(modules), resident_bytes, "Weights"):
            packed_weights.pack(modules)

    def packs_seamless(self, modules: tuple[Any, ...], resident_bytes: int) -> bool:
        """May a seamless run of ``modules`` use packed convolutions? Their unpadded copies are packed once and
        kept (``packed_weights.seamless_bytes``): yes where those already exist or still fit the RAM share beside
        ``resident_bytes``; no: the padded convolutions run unpacked while seamless."""
        extra = packed_weights.seamless_bytes(modules)
        return extra == 0 or self._room_for(extra, resident_bytes, "Seamless weights")

    def _room_for(self, extra: int, resident_bytes: int, what: str) -> bool:
        total = devices.total_memory(self.device)
        if total is not None and resident_bytes + extra > PACKED_WEIGHTS_MEMORY_SHARE * total:
            log.info("%s not packed: %.1f GB more would leave too little of %.1f GB of RAM.",
                     what, extra / 1e9, total / 1e9)
            return False
        return True
