"""Real-Blender harness: the add-on loaded the way Blender loads an extension.

Blender imports an extension as ``bl_ext.<repo module>.<extension id>`` from a
repository directory, and the package directory must be named like the
extension id. CI clones this repo into a folder with another name, so the
session fixture makes a temporary repository directory holding a symlink
``latent_textures -> <repo root>`` and registers it as a user repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_extension_loader():
    """``tools/extension_loader.py`` (shared with the launcher), imported by path: tools/ is not on sys.path."""
    spec = importlib.util.spec_from_file_location("lt_extension_loader", REPO_ROOT / "tools" / "extension_loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_loader = _load_extension_loader()
EXTENSION_ID = _loader.EXTENSION_ID
TEST_REPO_MODULE = "lt_tests"
ADDON_MODULE = _loader.addon_module(TEST_REPO_MODULE)

# Isolated user resources (config, extensions, the add-on's user folder) for
# this test run: must be set before bpy is imported.
_USER_RESOURCES = _loader.isolate_user_resources()

import bpy  # noqa: E402


def make_extension_repo() -> str:
    return _loader.make_extension_repo()


def ensure_repo(repo_dir: str) -> None:
    _loader.ensure_repo(repo_dir, TEST_REPO_MODULE)


def enable_addon() -> None:
    _loader.enable(ADDON_MODULE)


def disable_addon() -> None:
    _loader.disable(ADDON_MODULE)


_raise = _loader._raise


def datablock_counts() -> dict[str, int]:
    """What a failed generation must leave unchanged."""
    counts = {
        "images": len(bpy.data.images),
        "materials": len(bpy.data.materials),
        "meshes": len(bpy.data.meshes),
        "scenes": len(bpy.data.scenes),
    }
    for material in bpy.data.materials:
        if material.node_tree is not None:
            counts[f"nodes:{material.name}"] = len(material.node_tree.nodes)
            counts[f"links:{material.name}"] = len(material.node_tree.links)
    for mesh in bpy.data.meshes:
        counts[f"uv:{mesh.name}"] = len(mesh.uv_layers)
        counts[f"materials:{mesh.name}"] = len(mesh.materials)
    return counts
