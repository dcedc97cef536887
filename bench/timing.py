"""Measuring on a noisy machine: interleaved rounds, medians, paired ratios, CPU share, memory.

Every figure of the benchmark comes from :func:`interleave`: after a warm-up,
each round runs every contender once, in a rotated order, so a burst of load
from another process hits all of them alike. A ratio is the median of the
per-round ratios (paired), not the ratio of two medians. Each sample also
records the CPU share it got: process CPU time / (wall time x torch threads);
well below 1 means another process took the cores meanwhile.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_package_loader() -> Any:
    """``tools/package_loader.py`` (shared with the tests), loaded by path."""
    name = "latent_textures_package_loader"  # the name tests/dependencies/deps_support.py uses too
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "package_loader.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


import_engine = _load_package_loader().import_engine
import_tiny_models = _load_package_loader().import_tiny_models


def torch_threads() -> int:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:
        return 1


@dataclass
class Samples:
    """Wall times (s) of one contender and the CPU share of each run."""

    times: list[float] = field(default_factory=list)
    cpu_share: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def summary(self, scale: float = 1.0, digits: int = 4) -> dict[str, Any]:
        return {
            "median": round(self.median * scale, digits),
            "min": round(min(self.times) * scale, digits),
            "max": round(max(self.times) * scale, digits),
            "runs": len(self.times),
            "cpu_share": round(statistics.median(self.cpu_share), 2) if self.cpu_share else None,
        }


def timed(fn: Callable[[], Any], threads: int | None = None) -> tuple[float, float, Any]:
    """(wall seconds, CPU share, result) of one call."""
    threads = threads or torch_threads()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return wall, (cpu / (wall * threads) if wall > 0 else 1.0), result


def interleave(
    contenders: dict[str, Callable[[], Any]],
    *,
    runs: int,
    warmup: int = 1,
    threads: dict[str, int] | None = None,
    between: Callable[[], Any] | None = None,
) -> dict[str, Samples]:
    """Warm each contender up ``warmup`` times, then ``runs`` rounds of all of them, rotating who goes first."""
    names = list(contenders)
    threads = threads or {}
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples = {name: Samples() for name in names}
    for round_ in range(runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if between is not None:
                between()
            wall, share, _ = timed(contenders[name], threads.get(name))
            samples[name].times.append(wall)
            samples[name].cpu_share.append(share)
    return samples


def paired_ratio(samples: dict[str, Samples], numerator: str, denominator: str) -> float:
    """Median over rounds of time(numerator) / time(denominator), both measured in the same round."""
    pairs = zip(samples[numerator].times, samples[denominator].times, strict=True)
    return statistics.median(a / b for a, b in pairs)


# --- memory (Linux /proc; None elsewhere) ------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def rss_split_mb() -> dict[str, float | None]:
    """RSS as anonymous memory (the process's own) and file-backed pages (e.g. mmapped weights).

    File-backed pages of a safetensors file are page cache the kernel can drop under
    pressure; they count in RSS (and in a task manager) while they stay mapped.
    """
    anon, file = _status_kb("RssAnon"), _status_kb("RssFile")
    return {"anon": None if anon is None else anon / 1024, "file": None if file is None else file / 1024}


def peak_rss_mb() -> float | None:
    """Peak RSS since the process started or since the last :func:`reset_peak_rss`."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: ``5`` into /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


# --- the machine -------------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, memory, OS, Python and library versions."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in ("torch", "diffusers", "transformers", "accelerate", "numpy", "bpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": total_memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        flags = cpu_flags()
        info["bf16_native"] = bf16_native()
        info["bf16_flags"] = sorted(flags & {"avx512_bf16", "amx_bf16", "avx_ne_convert"})
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def bf16_native() -> bool:
    """Does this CPU run bf16 matrix maths in hardware (AVX512-BF16 or AMX)? The engine's own answer."""
    import importlib

    return importlib.import_module(import_engine().__name__ + ".devices").cpu_has_native_bf16()


class StepClock:
    """Forward hooks on a pipeline: time in the text encoder(s) and when the UNet is first called.

    ``start()`` before a generation; afterwards ``before_first_step()`` is the time
    from ``start()`` to the first UNet call minus the text encoder passes: the
    bookkeeping before denoising begins (scheduler, latents, checks, ...).
    """

    def __init__(self) -> None:
        self._hooked: set[int] = set()
        self.start()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.text_encoder = 0.0
        self.first_step: float | None = None
        self._te_start: float | None = None

    def attach(self, pipe: Any) -> None:
        if id(pipe.unet) in self._hooked:
            return
        self._hooked.add(id(pipe.unet))
        pipe.unet.register_forward_pre_hook(self._unet_pre)
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is not None:
                encoder.register_forward_pre_hook(self._te_pre)
                encoder.register_forward_hook(self._te_post)

    def _unet_pre(self, module: Any, args: Any) -> None:
        if self.first_step is None:
            self.first_step = time.perf_counter()

    def _te_pre(self, module: Any, args: Any) -> None:
        self._te_start = time.perf_counter()

    def _te_post(self, module: Any, args: Any, output: Any) -> None:
        if self._te_start is not None:
            self.text_encoder += time.perf_counter() - self._te_start
            self._te_start = None

    def before_first_step(self, exclude: float = 0.0) -> float | None:
        """Seconds from ``start()`` to the first UNet call, minus the text encoder and ``exclude`` (e.g. a load)."""
        if self.first_step is None:
            return None
        return self.first_step - self.t0 - self.text_encoder - exclude
