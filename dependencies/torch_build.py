"""Which PyTorch build to install for this machine: a pure decision from facts gathered elsewhere.

PyTorch publishes one wheel per accelerator stack. For the pinned 2.13 release
(PyTorch's release matrix for 2.13):

* CUDA 13.0: the PyPI default on Linux x86_64; Turing (compute capability 7.5)
  and newer; needs a driver that reports CUDA 13.0 or newer.
* CUDA 12.6: the "legacy" build that still runs Maxwell, Pascal and Volta
  (compute capability 5.0 to 7.0); runs on any CUDA 12 driver.
* ROCm 7.2: AMD GPUs, Linux x86_64 only. The wheel carries the ROCm runtime,
  so only the amdgpu kernel driver (``/dev/kfd``) is needed.
* CPU: Linux and Windows. macOS arm64 has a single wheel (PyPI) that includes
  Apple's MPS backend; Intel Macs have no wheels since PyTorch 2.3.

Changing the torch pin means reviewing ``VARIANTS`` (a test checks they agree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .requirements import TORCH, pin

TORCH_VERSION_FOR_VARIANTS = "2.13.0"
PYTORCH_INDEX = "https://download.pytorch.org/whl"
GIB = 1024**3


@dataclass(frozen=True)
class Variant:
    """One published wheel variant of the pinned torch."""

    key: str  # the preference value: CUDA_13_0, CUDA_12_6, ROCM_7_2, CPU, DEFAULT
    label: str  # what the preferences show
    local_version: str | None  # "cu130" -> torch==2.13.0+cu130 from PYTORCH_INDEX/cu130; None: PyPI's wheel
    download_bytes: int  # roughly what pip downloads for torch and its runtime wheels
    min_compute_capability: tuple[int, int] | None = None
    min_driver_cuda: tuple[int, int] | None = None


VARIANTS: dict[str, Variant] = {
    "CUDA_13_0": Variant("CUDA_13_0", "CUDA 13.0", "cu130", 3 * GIB, (7, 5), (13, 0)),
    "CUDA_12_6": Variant("CUDA_12_6", "CUDA 12.6", "cu126", 3 * GIB, (5, 0), (12, 0)),
    "ROCM_7_2": Variant("ROCM_7_2", "ROCm 7.2", "rocm7.2", 5 * GIB),
    "CPU": Variant("CPU", "CPU", "cpu", GIB // 4),
    # PyPI's own wheel: macOS (CPU + MPS), Windows CPU, Windows on ARM.
    "DEFAULT": Variant("DEFAULT", "PyPI default", None, GIB // 4),
}

# The preference's choices (``AUTO`` = decide from the machine).
OVERRIDE_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("AUTO", "Automatic", "Pick the build from this machine's GPU and driver"),
    ("CUDA_13_0", "CUDA 13.0", "NVIDIA, Turing (GTX 16xx/RTX 20xx) and newer; driver 580 or newer"),
    ("CUDA_12_6", "CUDA 12.6", "NVIDIA, older cards (GTX 9xx/10xx, Volta) or drivers that only reach CUDA 12"),
    ("ROCM_7_2", "ROCm 7.2", "AMD GPUs on Linux"),
    ("CPU", "CPU only", "No GPU: the smallest download, slow generation"),
)


@dataclass(frozen=True)
class NvidiaGpu:
    name: str
    memory_mib: int | None = None
    compute_capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class SystemFacts:
    """What the decision needs to know, gathered by ``system_facts.detect`` (or written by a test)."""

    system: str  # platform.system(): Linux, Windows, Darwin
    machine: str  # platform.machine(): x86_64, AMD64, arm64, aarch64, ARM64
    nvidia_gpus: tuple[NvidiaGpu, ...] = ()
    nvidia_driver: str | None = None
    nvidia_driver_cuda: tuple[int, int] | None = None  # the "CUDA Version" nvidia-smi reports
    amd_kfd: bool = False  # /dev/kfd: the amdgpu compute driver is loaded (Linux)
    rocm_version: str | None = None
    notes: tuple[str, ...] = field(default=())  # what detection could not tell (shown to the artist)

    @property
    def arch(self) -> str:
        machine = self.machine.lower()
        if machine in ("x86_64", "amd64", "x64"):
            return "x86_64"
        if machine in ("arm64", "aarch64", "armv8", "armv8l"):
            return "arm64"
        return machine


@dataclass(frozen=True)
class TorchBuild:
    """The decision: what to ask pip for, and why."""

    variant: Variant
    requirement: str  # "torch==2.13.0+cu130"
    extra_index_url: str | None
    reason: str

    @property
    def label(self) -> str:
        return self.variant.label


class UnsupportedPlatform(Exception):
    """No PyTorch wheel exists for this machine (or for the requested override on it)."""


# -- parsing what the NVIDIA driver says --------------------------------------------

_CUDA_VERSION = re.compile(r"CUDA Version\s*:\s*(\d+)\.(\d+)")
_DRIVER_VERSION = re.compile(r"Driver Version\s*:\s*([0-9.]+)")


def parse_nvidia_smi(text: str) -> tuple[str | None, tuple[int, int] | None]:
    """The driver version and the highest CUDA version it supports, from plain ``nvidia-smi`` output."""
    driver = _DRIVER_VERSION.search(text)
    cuda = _CUDA_VERSION.search(text)
    return (
        driver.group(1) if driver else None,
        (int(cuda.group(1)), int(cuda.group(2))) if cuda else None,
    )


def parse_nvidia_query(text: str) -> tuple[NvidiaGpu, ...]:
    """GPUs from ``nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader,nounits``.

    Old drivers do not know ``compute_cap`` and print "[Not Supported]" or an
    error; such fields are left unknown rather than guessed.
    """
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 2 or not parts[0] or parts[0].lower().startswith(("error", "field", "nvidia-smi")):
            continue
        memory = int(parts[1]) if parts[1].isdigit() else None
        capability = None
        if len(parts) > 2:
            match = re.fullmatch(r"(\d+)\.(\d+)", parts[2])
            if match:
                capability = (int(match.group(1)), int(match.group(2)))
        gpus.append(NvidiaGpu(parts[0], memory, capability))
    return tuple(gpus)


# -- the decision -------------------------------------------------------------------

def choose_torch_build(facts: SystemFacts, override: str = "AUTO") -> TorchBuild:
    """The torch build for ``facts``; ``override`` is the preference (``AUTO`` or a ``VARIANTS`` key).

    Raises ``UnsupportedPlatform`` (with a message for the artist) when no wheel fits.
    """
    if override not in ("AUTO", *VARIANTS):
        raise ValueError(f"torch build override must be AUTO or one of {', '.join(VARIANTS)}; got {override!r}")
    _check_platform(facts)
    if override != "AUTO":
        return _forced(facts, override)
    if facts.system == "Darwin":
        return _build("DEFAULT", "macOS: PyPI's wheel, which runs on Apple GPUs through MPS", label="MPS")
    if facts.nvidia_gpus or facts.nvidia_driver_cuda:
        return _auto_nvidia(facts)
    if facts.system == "Linux" and facts.amd_kfd and facts.arch == "x86_64":
        rocm = f" (ROCm {facts.rocm_version} installed)" if facts.rocm_version else ""
        return _build("ROCM_7_2", f"an AMD GPU driver (/dev/kfd) was found{rocm}")
    return _cpu(facts, "no NVIDIA or AMD GPU was found")


def _check_platform(facts: SystemFacts) -> None:
    if facts.system == "Darwin" and facts.arch != "arm64":
        raise UnsupportedPlatform(
            "PyTorch publishes no wheels for Intel Macs since version 2.3, so the engine cannot be installed "
            "here; an Apple Silicon Mac (M1 or newer) is needed."
        )
    if facts.system not in ("Linux", "Windows", "Darwin"):
        raise UnsupportedPlatform(f"PyTorch has no wheels for {facts.system}.")
    if facts.arch not in ("x86_64", "arm64"):
        raise UnsupportedPlatform(f"PyTorch has no wheels for {facts.system} on {facts.machine}.")


def _forced(facts: SystemFacts, key: str) -> TorchBuild:
    reason = "chosen in the preferences"
    if facts.system == "Darwin":
        if key not in ("CPU", "DEFAULT"):
            raise UnsupportedPlatform(
                f"{VARIANTS[key].label} builds do not exist for macOS; set PyTorch Build to Automatic "
                "(PyPI's wheel, with Apple GPU support)."
            )
        return _build("DEFAULT", f"{reason}; macOS has one wheel (CPU and MPS)", label="MPS")
    if key == "ROCM_7_2" and not (facts.system == "Linux" and facts.arch == "x86_64"):
        raise UnsupportedPlatform("PyTorch's ROCm builds exist for Linux x86_64 only.")
    if key == "CUDA_12_6" and facts.arch == "arm64":
        raise UnsupportedPlatform("PyTorch's CUDA 12.6 build has no ARM wheels; choose CUDA 13.0 or CPU.")
    if key in ("CUDA_13_0", "CUDA_12_6") and facts.system == "Windows" and facts.arch == "arm64":
        raise UnsupportedPlatform("PyTorch has no CUDA builds for Windows on ARM.")
    if key == "CPU":
        return _cpu(facts, reason)
    return _build(key, reason)


def _auto_nvidia(facts: SystemFacts) -> TorchBuild:
    names = ", ".join(gpu.name for gpu in facts.nvidia_gpus) or "an NVIDIA GPU"
    if facts.system == "Windows" and facts.arch == "arm64":
        return _cpu(facts, f"{names} found, but PyTorch has no CUDA builds for Windows on ARM")
    driver_cuda = facts.nvidia_driver_cuda
    capabilities = [gpu.compute_capability for gpu in facts.nvidia_gpus if gpu.compute_capability]
    lowest = min(capabilities) if capabilities else None
    newest, legacy = VARIANTS["CUDA_13_0"], VARIANTS["CUDA_12_6"]
    if lowest is not None and lowest < legacy.min_compute_capability:
        return _cpu(
            facts,
            f"{names} (compute capability {lowest[0]}.{lowest[1]}) is older than any PyTorch "
            f"{TORCH_VERSION_FOR_VARIANTS} CUDA build supports (5.0)",
        )
    if driver_cuda is not None and driver_cuda < legacy.min_driver_cuda:
        return _cpu(
            facts,
            f"the NVIDIA driver {facts.nvidia_driver or ''} only supports CUDA {driver_cuda[0]}.{driver_cuda[1]}; "
            "update the driver to use the GPU (PyTorch needs CUDA 12 or newer)",
        )
    old_card = lowest is not None and lowest < newest.min_compute_capability
    old_driver = driver_cuda is not None and driver_cuda < newest.min_driver_cuda
    if facts.arch == "arm64":
        if old_driver:
            return _cpu(facts, f"{names}: ARM CUDA wheels need a CUDA 13 driver; update the NVIDIA driver")
        return _build("CUDA_13_0", f"{names} on ARM")
    if old_card:
        return _build(
            "CUDA_12_6",
            f"{names} (compute capability {lowest[0]}.{lowest[1]}) needs the CUDA 12.6 build; CUDA 13 dropped it",
        )
    if old_driver:
        return _build(
            "CUDA_12_6",
            f"{names}; the driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]} (a driver for CUDA 13 "
            "would allow the newer build)",
        )
    if driver_cuda is None:
        return _build("CUDA_12_6", f"{names}; the driver's CUDA version is unknown, so the most compatible build")
    return _build("CUDA_13_0", f"{names}; driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]}")


def _cpu(facts: SystemFacts, reason: str) -> TorchBuild:
    # Linux: the CPU index's wheel is ~200 MB instead of PyPI's CUDA wheel (several GB).
    if facts.system == "Linux":
        return _build("CPU", reason)
    return _build("DEFAULT", f"{reason}; PyPI's {facts.system} wheel is the CPU build", label="CPU")


def _build(key: str, reason: str, label: str | None = None) -> TorchBuild:
    variant = VARIANTS[key]
    if label is not None:
        variant = Variant(variant.key, label, variant.local_version, variant.download_bytes)
    version = pin(TORCH).version
    if variant.local_version is None:
        return TorchBuild(variant, f"{TORCH}=={version}", None, reason)
    return TorchBuild(
        variant,
        f"{TORCH}=={version}+{variant.local_version}",
        f"{PYTORCH_INDEX}/{variant.local_version}",
        reason,
    )
