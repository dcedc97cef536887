"""Device and precision resolution, the CPU seed generator and out-of-memory translation."""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import traceback
from typing import Any

import torch

from .errors import EngineError, OutOfMemoryError
from .files import BF16_CPU_FEATURES, cpu_bf16_native, run_dtype


def resolve_device(name: str) -> torch.device:
    """``AUTO`` picks CUDA, then MPS, then CPU; an explicit choice must be available."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "AUTO":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "CUDA" and not cuda:
        raise EngineError(
            "CUDA was requested but this PyTorch has no usable CUDA GPU "
            f"(torch {torch.__version__}); install a CUDA build of torch or set the device to Auto or CPU."
        )
    if name == "MPS" and not mps:
        raise EngineError("MPS (Apple GPU) was requested but is not available here; set the device to Auto or CPU.")
    return torch.device({"CUDA": "cuda", "MPS": "mps", "CPU": "cpu"}[name])


def cpu_features() -> dict[str, bool]:
    """The CPU's features as torch reads them (cpuid, on every OS) and oneDNN may use them (its bf16 ones
    are off when ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below them); {} where this torch cannot say."""
    try:
        features = {name: bool(value) for name, value in torch.cpu.get_capabilities().items() if isinstance(value, bool)}
    except (AttributeError, RuntimeError):
        return {}
    if not cpu_bf16_native(BF16_CPU_FEATURES, os.environ.get("ONEDNN_MAX_CPU_ISA", "")):  # capped below bf16
        features.update(dict.fromkeys(BF16_CPU_FEATURES, False))
    return features


def cpu_has_native_bf16(features: dict[str, bool] | None = None) -> bool:
    """Does this CPU run bf16 matrix maths in hardware (AVX512-BF16 or AMX-BF16)?

    Read from the CPU's own feature flags, never guessed from its vendor or name:
    plain AVX-512 (e.g. Intel Ice Lake, Zen 3 has none) only emulates bf16.
    """
    features = cpu_features() if features is None else features
    return cpu_bf16_native(name for name, on in features.items() if on)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``AUTO``: CUDA bf16 where the card supports it, else fp16 (fp32 on GTX 16xx); MPS fp16;
    CPU bf16 where it has native bf16 (``cpu_has_native_bf16``), else fp32.

    The rule itself is ``files.run_dtype`` (the preferences' Download picks files by it too).
    """
    name = ""
    bf16_native = False
    if precision == "AUTO" and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        # Native bf16 only (Ampere and newer); older cards would emulate it slowly.
        bf16_native = torch.cuda.is_bf16_supported(including_emulation=False)
    elif precision == "AUTO" and device.type == "cpu":
        bf16_native = cpu_has_native_bf16()
    return getattr(torch, run_dtype(precision, device.type, name, bf16_native))


def reproducibility_fields(device: torch.device) -> dict[str, Any]:
    """What else, beside the recipe's settings, decides the exact pixels (recorded in the recipe).

    On a CPU the kernels oneDNN picks (its instruction set) and how many threads split each sum
    change float rounding; on a GPU, its model.
    """
    if device.type == "cpu":
        try:
            capability = str(torch.backends.cpu.get_cpu_capability())
        except (AttributeError, RuntimeError):
            capability = ""
        return {"threads": torch.get_num_threads(), "cpu_capability": capability, "torch": torch.__version__}
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__}
    return {"torch": torch.__version__}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def seed_generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed is the same starting noise on every device."""
    return torch.Generator(device="cpu").manual_seed(seed)


def total_memory(device: torch.device) -> int | None:
    """Bytes of memory ``device`` has in all (CUDA: the card; MPS: Metal's working-set limit; CPU: the RAM).

    None where it cannot be read (e.g. the RAM on Windows). A total, not what is free
    right now: decisions made from it are the same on every run on one machine.
    """
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "mps":
            return int(torch.mps.recommended_max_memory())
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError, RuntimeError):
        return None


MEMORY_BUDGET_ENV = "LATENT_TEXTURES_MEMORY_BUDGET_MB"


def memory_budget(device: torch.device) -> int | None:
    """Bytes the engine plans with on ``device`` (``total_memory``), or ``LATENT_TEXTURES_MEMORY_BUDGET_MB``
    megabytes where that is set: to run as on a smaller machine (and to test the memory refusals for real).
    Honoured by the SYNC view groups and VAE tiling ``AUTO``; ValueError naming the variable if not a number."""
    text = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if not text:
        return total_memory(device)
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(f"{MEMORY_BUDGET_ENV} must be a number of megabytes; got {text!r}") from None
    if not megabytes > 0:
        raise ValueError(f"{MEMORY_BUDGET_ENV} must be positive; got {text!r}")
    return int(megabytes * 2**20)


def empty_cache(device: torch.device) -> None:
    """Collect garbage, then give the memory back: the CUDA/MPS cache, and the C heap to the OS."""
    gc.collect()
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
    trim_heap()


def trim_heap() -> bool:
    """Return freed C-heap memory to the OS (glibc's ``malloc_trim``); False where there is none.

    glibc keeps freed memory in its heap for reuse: after an SD-1.5-sized model was
    freed, the process still held ~0.9 GB more than before it loaded (bench/).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return False


# What a real allocation failure says: CUDA/MPS "out of memory", CPU (c10's DefaultCPUAllocator, ENOMEM)
# "can't allocate memory", Windows "not enough memory".
_OOM_TEXTS = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")


def oom_fix(device: torch.device) -> str:
    """What to change so that a run fits ``device``: the settings, then the preferences."""
    if device.type == "cpu":
        return ("lower Width/Height (Whole Object: fewer Views), set VAE Tiling to On or turn on Attention Slicing "
                "in the preferences, or close other programs (CPU Offload helps only a GPU)")
    return ("lower Width/Height (Whole Object: fewer Views), set VAE Tiling to On, turn on Attention Slicing or "
            "CPU Offload in the preferences, or use FP16/BF16 precision")


def is_oom(error: BaseException) -> bool:
    """Is ``error`` an out-of-memory error (CUDA, MPS or CPU allocator)?"""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in text for words in _OOM_TEXTS)


class oom_as_engine_error:  # noqa: N801 - used as a function: ``with oom_as_engine_error(device):``
    """Turn CUDA/MPS/CPU out-of-memory into ``OutOfMemoryError`` and give the memory back.

    The failed run's frames hold its activations through the traceback (also what ``locals()`` copied
    out of them and their functions' closures, which clearing a frame leaves): the traceback is cleared
    and let go (the original error stays the ``__cause__``, without it) before the cache is emptied,
    so a retry at a smaller size has the memory even while the caller still holds the exception.
    A class, not a ``@contextmanager``: contextlib's ``__exit__`` would keep the traceback in its frame.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> bool:
        if error is None or not is_oom(error):
            return False
        traceback.clear_frames(trace)
        error.__traceback__ = trace = None
        empty_cache(self.device)
        detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise OutOfMemoryError(
            f"The {self.device.type.upper()} ran out of memory ({detail}). Nothing was changed; to fit the run, "
            f"{oom_fix(self.device)}."
        ) from error
