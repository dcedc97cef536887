"""The status probe, run as a script by Blender's Python in a child process (never imported by Blender).

    python -I -X utf8 probe_worker.py '{"path": [...], "packages": [...]}'

``path`` becomes the child's ``sys.path`` exactly, in the order the engine
would see it once the add-on's package folder is activated. The child imports
torch (seconds, hundreds of MB) so that Blender does not have to; it prints one
line ``@@LT_PROBE {json}`` that ``probe.parse_probe_output`` reads. Standard
library only, and no imports from the add-on: this file runs on its own.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

MARKER = "@@LT_PROBE "


def package_report(name: str) -> dict | None:
    import importlib.metadata as metadata

    found = list(metadata.distributions(name=name))
    if not found:
        return None
    first = found[0]
    locations = [str(dist.locate_file("")) for dist in found]
    return {"version": first.version, "location": locations[0], "shadowed": locations[1:]}


def cpu_name() -> str:
    system = platform.system()
    try:
        if system == "Linux":
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                        value = line.split(":", 1)[1].strip()
                        if value and not value.isdigit():
                            return value
        elif system == "Darwin":
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.processor()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def system_memory() -> int | None:
    try:
        if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if sys.platform == "win32":
            import ctypes

            class MemoryStatus(ctypes.Structure):
                _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong),
                            ("total_phys", ctypes.c_ulonglong), ("avail_phys", ctypes.c_ulonglong),
                            ("total_page", ctypes.c_ulonglong), ("avail_page", ctypes.c_ulonglong),
                            ("total_virtual", ctypes.c_ulonglong), ("avail_virtual", ctypes.c_ulonglong),
                            ("avail_extended", ctypes.c_ulonglong)]

            status = MemoryStatus()
            status.length = ctypes.sizeof(MemoryStatus)
            ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
            return int(status.total_phys)
    except (OSError, ValueError, AttributeError):
        pass
    return None


def torch_report() -> dict:
    try:
        import torch
    except Exception as error:  # a broken install is a status to show, not a crash of the probe
        return {"imported": False, "error": f"{type(error).__name__}: {error}"}
    report: dict = {"imported": True, "error": None, "version": torch.__version__,
                    "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None),
                    "mps_built": False, "mps_available": False, "devices": [], "device_error": None}
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        report["mps_built"] = bool(mps.is_built())
        report["mps_available"] = bool(mps.is_available())
    try:
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                report["devices"].append({
                    "type": "cuda", "index": index, "name": props.name, "memory": int(props.total_memory),
                    "capability": f"{props.major}.{props.minor}",
                })
        if report["mps_available"]:
            memory = None
            if hasattr(torch, "mps") and hasattr(torch.mps, "recommended_max_memory"):
                memory = int(torch.mps.recommended_max_memory())
            report["devices"].append({"type": "mps", "index": 0, "name": cpu_name(), "memory": memory})
    except Exception as error:  # e.g. a driver/runtime mismatch: torch imports, the GPU does not answer
        report["device_error"] = f"{type(error).__name__}: {error}"
    try:  # the CPU's features as the engine reads them (Precision Auto: bf16 where it has native bf16)
        features = sorted(name for name, on in torch.cpu.get_capabilities().items() if on is True)
    except (AttributeError, RuntimeError):
        features = []
    report["devices"].append({"type": "cpu", "index": 0, "name": cpu_name(), "memory": system_memory(),
                              "threads": torch.get_num_threads(), "features": features})
    return report


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    sys.path[:] = list(request["path"])
    result = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": {name: package_report(name) for name in request["packages"]},
    }
    result["torch"] = torch_report() if result["packages"].get("torch") else None
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
