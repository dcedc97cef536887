"""The status probe: a child Python reports versions, torch's build and devices; Blender never imports torch."""

from __future__ import annotations

import json
import sys

import pytest
from deps_support import import_dependencies

probe = import_dependencies("probe")

CUDA_ANSWER = {
    "python": "3.11.9",
    "executable": "/blender/python/bin/python3.11",
    "platform": "Linux x86_64",
    "packages": {
        "torch": {"version": "2.13.0+cu130", "location": "/u/site-packages", "shadowed": ["/home/a/.local/lib"]},
        "diffusers": {"version": "0.40.0", "location": "/u/site-packages", "shadowed": []},
        "transformers": None,
    },
    "torch": {
        "imported": True, "error": None, "version": "2.13.0+cu130", "cuda": "13.0", "hip": None,
        "mps_built": False, "mps_available": False, "device_error": None,
        "devices": [
            {"type": "cuda", "index": 0, "name": "NVIDIA GeForce RTX 4090", "memory": 25_393_692_672,
             "capability": "8.9"},
            {"type": "cpu", "index": 0, "name": "AMD Ryzen 9", "memory": 68_719_476_736, "threads": 16},
        ],
    },
}


def answer(data) -> str:
    return "UserWarning: something torch printed\n" + probe.MARKER + json.dumps(data) + "\n"


def test_parse_a_cuda_machine():
    status = probe.parse_probe_output(answer(CUDA_ANSWER), ["/u/site-packages"])
    assert status.build == "CUDA 13.0"
    assert status.torch_imported and status.torch_version == "2.13.0+cu130"
    torch = status.package("torch")
    assert torch.matches_pin, "the +cu130 local label does not make it a different version"
    assert torch.shadowed == ("/home/a/.local/lib",)
    diffusers = status.package("diffusers")
    assert diffusers.installed and not diffusers.matches_pin and diffusers.expected == "0.42.1"
    assert status.missing == ["transformers"] and not status.ready
    assert status.summary() == "Missing: transformers"
    assert [device.name for device in status.devices] == ["NVIDIA GeForce RTX 4090", "AMD Ryzen 9"]
    assert probe.format_memory(status.devices[0].memory) == "23.6 GB"


@pytest.mark.parametrize(
    "torch, label",
    [
        ({"hip": "7.2.41134-65d174c3e", "cuda": None}, "ROCm 7.2"),
        ({"cuda": None, "mps_built": True, "mps_available": True}, "MPS"),
        ({"cuda": None, "mps_built": True, "mps_available": False}, "MPS (not available on this Mac)"),
        ({"cuda": None}, "CPU"),
    ],
)
def test_build_labels(torch, label):
    assert probe.torch_build_label(torch) == label


def test_no_answer_is_an_error_with_the_childs_last_words():
    with pytest.raises(probe.ProbeError, match="Segmentation fault"):
        probe.parse_probe_output("loading…\nSegmentation fault (core dumped)\n")


def test_search_path_puts_the_add_on_folder_first():
    assert probe.search_path_for("/u/sp", ["/a", "", "/u/sp", "/b"]) == ["/u/sp", "/a", "/b"]


def test_probe_command_is_isolated():
    command = probe.probe_command("/py", ["/u/sp"], ["torch"])
    assert command[:5] == ["/py", "-I", "-X", "utf8", probe.WORKER]
    assert json.loads(command[5]) == {"path": ["/u/sp"], "packages": ["torch"]}


def test_real_probe_finds_this_venvs_cpu_torch(tmp_path):
    """The dev venv has CPU torch in its site-packages: found through Blender's (here: this) sys.path."""
    torch_here_before = "torch" in sys.modules
    status = probe.run_probe(sys.executable, probe.search_path_for(str(tmp_path / "site-packages"), sys.path))
    torch = status.package("torch")
    assert torch.installed and torch.version.startswith("2.13.0")
    assert status.torch_imported and status.build == "CPU"
    cpu = [device for device in status.devices if device.type == "cpu"]
    assert cpu and cpu[0].memory and cpu[0].memory > 0 and cpu[0].name
    assert status.ready and status.summary().startswith("Ready: PyTorch 2.13.0")
    # The child imported torch; this process did not (it may hold torch from other tests already).
    assert ("torch" in sys.modules) == torch_here_before


def test_missing_packages_on_a_bare_path(tmp_path):
    stdlib_only = [p for p in sys.path if "site-packages" not in p]
    status = probe.run_probe(sys.executable, stdlib_only)
    assert set(status.missing) >= {"torch", "diffusers", "transformers", "accelerate", "safetensors"}
    assert not status.torch_imported and status.summary().startswith("Missing: torch")


def test_installed_but_broken_torch_is_reported_not_hidden(tmp_path):
    """A torch whose import fails (a DLL problem, a half-copied folder) shows its error in the status."""
    site = tmp_path / "site-packages"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("raise ImportError('libtorch_cuda.so: cannot open shared object')\n")
    (site / "torch-2.13.0.dist-info").mkdir()
    (site / "torch-2.13.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n")
    status = probe.run_probe(sys.executable, probe.search_path_for(str(site), sys.path), packages=["torch"])
    torch = status.package("torch")
    assert torch.location == str(site) and torch.shadowed, "the venv's real torch is further down the path"
    assert not status.torch_imported and "libtorch_cuda.so" in status.torch_error
    assert status.summary().startswith("PyTorch is installed but does not load")


def test_format_bytes():
    assert probe.format_bytes(None) == "?"
    assert probe.format_bytes(999) == "999 bytes"
    assert probe.format_bytes(4_300_000_000) == "4.3 GB"
