"""Gather the facts ``torch_build.choose_torch_build`` decides from (runs ``nvidia-smi``; no bpy, no torch)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

from .process import hidden_window_flags
from .torch_build import SystemFacts, parse_nvidia_query, parse_nvidia_smi

NVIDIA_QUERY = ("--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits")
ROCM_VERSION_FILES = ("/opt/rocm/.info/version", "/opt/rocm/.info/version-dev")


def find_nvidia_smi() -> str | None:
    """``nvidia-smi`` on PATH, or where the Windows driver installs it."""
    found = shutil.which("nvidia-smi")
    if found:
        return found
    if platform.system() == "Windows":
        for base in (os.environ.get("SystemRoot", r"C:\Windows") + r"\System32",
                     os.environ.get("ProgramFiles", r"C:\Program Files") + r"\NVIDIA Corporation\NVSMI"):
            candidate = os.path.join(base, "nvidia-smi.exe")
            if os.path.isfile(candidate):
                return candidate
    return None


def _run(command: list[str], timeout: float) -> tuple[int, str]:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=timeout,
            stdin=subprocess.DEVNULL, creationflags=hidden_window_flags(),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return -1, f"{type(error).__name__}: {error}"
    return completed.returncode, completed.stdout + completed.stderr


def detect(timeout: float = 10.0) -> SystemFacts:
    """This machine's facts. A tool that fails is recorded in ``notes``, never raised."""
    system, machine = platform.system(), platform.machine()
    notes: list[str] = []
    gpus: tuple = ()
    driver = driver_cuda = None
    smi = find_nvidia_smi()
    if smi is not None:
        code, output = _run([smi], timeout)
        if code == 0:
            driver, driver_cuda = parse_nvidia_smi(output)
        else:
            notes.append(f"nvidia-smi failed: {output.strip().splitlines()[-1] if output.strip() else code}")
        code, output = _run([smi, *NVIDIA_QUERY], timeout)
        if code == 0:
            gpus = parse_nvidia_query(output)
    amd_kfd = system == "Linux" and os.path.exists("/dev/kfd")
    rocm_version = None
    for path in ROCM_VERSION_FILES:
        try:
            with open(path, encoding="utf-8") as handle:
                rocm_version = handle.read().strip() or None
            break
        except OSError:
            continue
    return SystemFacts(
        system=system, machine=machine, nvidia_gpus=gpus, nvidia_driver=driver,
        nvidia_driver_cuda=driver_cuda, amd_kfd=amd_kfd, rocm_version=rocm_version, notes=tuple(notes),
    )
