"""What is installed, as the engine would see it: run ``probe_worker.py`` in a child Python and read its answer.

Blender never imports torch to answer "is torch there?": the child does, and
the answer is cached by the caller (see ``state``) until the next Refresh.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .process import child_environment, hidden_window_flags, redact_secrets
from .requirements import ENGINE_PINS, normalize_name, pin

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_worker.py")
MARKER = "@@LT_PROBE "


@dataclass(frozen=True)
class PackageStatus:
    name: str
    version: str | None  # None: missing
    location: str | None = None
    shadowed: tuple[str, ...] = ()  # other copies further down the path (never imported)

    @property
    def installed(self) -> bool:
        return self.version is not None

    @property
    def expected(self) -> str | None:
        try:
            return pin(self.name).version
        except KeyError:
            return None

    @property
    def matches_pin(self) -> bool:
        """Same public version as the pin (a local label such as ``+cu130`` is ignored)."""
        return self.version is not None and self.version.split("+", 1)[0] == self.expected


@dataclass(frozen=True)
class Device:
    type: str  # cuda, mps, cpu
    name: str
    memory: int | None = None  # bytes
    capability: str | None = None
    features: tuple[str, ...] = ()  # CPU: the instruction-set features it has, as torch names them


@dataclass(frozen=True)
class DependencyStatus:
    """The probe's answer."""

    python: str
    executable: str
    packages: tuple[PackageStatus, ...]
    torch_imported: bool = False
    torch_error: str | None = None
    torch_version: str | None = None
    build: str | None = None  # "CUDA 13.0", "ROCm 7.2", "MPS", "CPU"
    devices: tuple[Device, ...] = ()
    device_error: str | None = None
    search_path: tuple[str, ...] = field(default=())

    def package(self, name: str) -> PackageStatus:
        key = normalize_name(name)
        for item in self.packages:
            if normalize_name(item.name) == key:
                return item
        return PackageStatus(name, None)

    @property
    def missing(self) -> list[str]:
        return [item.name for item in self.packages if not item.installed]

    @property
    def ready(self) -> bool:
        """Everything the engine needs is there and torch imports."""
        return not self.missing and self.torch_imported

    def summary(self) -> str:
        if self.missing:
            return f"Missing: {', '.join(self.missing)}"
        if not self.torch_imported:
            return f"PyTorch is installed but does not load: {self.torch_error}"
        gpus = [device.name for device in self.devices if device.type != "cpu"]
        return f"Ready: PyTorch {self.torch_version} ({self.build})" + (f" on {', '.join(gpus)}" if gpus else "")


class ProbeError(Exception):
    """The probe itself failed (the child crashed or printed no answer)."""


def probe_command(python: str, search_path: Sequence[str], packages: Sequence[str]) -> list[str]:
    """``-I``: the child ignores PYTHON* variables and the user's site-packages; its path is exactly ours.

    ``-X utf8``: -I also ignores PYTHONUTF8, and Windows pipes would otherwise use the ANSI code page.
    """
    request = json.dumps({"path": list(search_path), "packages": list(packages)})
    return [python, "-I", "-X", "utf8", WORKER, request]


def search_path_for(site_packages: str, current_path: Sequence[str]) -> list[str]:
    """The path the engine sees after ``activate(site_packages)``: that folder first, then Blender's own."""
    path = [site_packages]
    for entry in current_path:
        if entry and entry not in path:
            path.append(entry)
    return path


def parse_probe_output(text: str, search_path: Sequence[str] = ()) -> DependencyStatus:
    """Read the worker's ``@@LT_PROBE`` line (anything else it printed, e.g. warnings, is ignored)."""
    for line in reversed(text.splitlines()):
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER):])
            break
    else:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise ProbeError(f"the status check printed no answer:\n{redact_secrets(tail)}" if tail
                         else "the status check printed nothing")
    packages = tuple(
        PackageStatus(name, info["version"], info["location"], tuple(info.get("shadowed", ())))
        if info else PackageStatus(name, None)
        for name, info in data["packages"].items()
    )
    torch = data.get("torch") or {}
    devices = tuple(
        Device(item["type"], item["name"], item.get("memory"), item.get("capability"),
               tuple(item.get("features", ())))
        for item in torch.get("devices", ())
    )
    return DependencyStatus(
        python=data["python"],
        executable=data["executable"],
        packages=packages,
        torch_imported=bool(torch.get("imported")),
        torch_error=torch.get("error"),
        torch_version=torch.get("version"),
        build=torch_build_label(torch) if torch.get("imported") else None,
        devices=devices,
        device_error=torch.get("device_error"),
        search_path=tuple(search_path),
    )


def torch_build_label(torch: Mapping) -> str:
    """``CUDA 13.0`` / ``ROCm 7.2`` / ``MPS`` / ``CPU`` from what the imported torch reports."""
    if torch.get("hip"):
        return "ROCm " + ".".join(str(torch["hip"]).split(".")[:2])
    if torch.get("cuda"):
        return f"CUDA {torch['cuda']}"
    if torch.get("mps_built"):
        return "MPS" if torch.get("mps_available") else "MPS (not available on this Mac)"
    return "CPU"


def run_probe(
    python: str,
    search_path: Sequence[str],
    packages: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> DependencyStatus:
    """Probe in a child process; raises ``ProbeError`` when the child fails or hangs."""
    names = list(packages) if packages is not None else [item.name for item in ENGINE_PINS]
    try:
        completed = subprocess.run(
            probe_command(python, search_path, names),
            capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
            stdin=subprocess.DEVNULL, env=child_environment(env if env is not None else os.environ),
            creationflags=hidden_window_flags(),
        )
    except subprocess.TimeoutExpired as error:
        raise ProbeError(f"the status check did not finish within {timeout:g} s (importing torch hung)") from error
    except OSError as error:
        raise ProbeError(f"could not start {python}: {error}") from error
    if completed.returncode != 0 and MARKER not in completed.stdout:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-5:])
        raise ProbeError(f"the status check failed (exit {completed.returncode}):\n{redact_secrets(tail)}")
    return parse_probe_output(completed.stdout, search_path)


def format_bytes(count: int | None) -> str:
    """``1536`` -> ``1.5 KB``; decimal units, as operating systems show file sizes."""
    if count is None:
        return "?"
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    if unit == "bytes":
        return f"{int(value)} bytes"
    return f"{value:.1f} {unit}"


def format_memory(count: int | None) -> str:
    """Device memory in GiB, labelled GB as drivers and Task Manager do (a "24 GB" card is 24 GiB)."""
    return "?" if count is None else f"{count / 1024**3:.1f} GB"
