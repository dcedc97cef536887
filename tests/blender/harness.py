"""Real-Blender harness: the add-on loaded the way Blender loads an extension.

Blender imports an extension as ``bl_ext.<repo module>.<extension id>`` from a
repository directory, and the package directory must be named like the
extension id. CI clones this repo into a folder with another name, so the
session fixture makes a temporary repository directory holding a symlink
``latent_textures -> <repo root>`` and registers it as a user repository.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTENSION_ID = "latent_textures"
TEST_REPO_MODULE = "lt_tests"
ADDON_MODULE = f"bl_ext.{TEST_REPO_MODULE}.{EXTENSION_ID}"

# Isolated user resources (config, extensions, the add-on's user folder) for
# this test run: must be set before bpy is imported.
_USER_RESOURCES = tempfile.mkdtemp(prefix="lt_blender_user_")
os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES

import bpy  # noqa: E402
import addon_utils  # noqa: E402


def make_extension_repo() -> str:
    repo_dir = tempfile.mkdtemp(prefix="lt_extension_repo_")
    os.symlink(REPO_ROOT, os.path.join(repo_dir, EXTENSION_ID), target_is_directory=True)
    return repo_dir


def ensure_repo(repo_dir: str) -> None:
    repos = bpy.context.preferences.extensions.repos
    if not any(r.module == TEST_REPO_MODULE for r in repos):
        repos.new(name=TEST_REPO_MODULE, module=TEST_REPO_MODULE, custom_directory=repo_dir, source="USER")


def enable_addon() -> None:
    addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=_raise)
    if ADDON_MODULE not in bpy.context.preferences.addons:
        raise RuntimeError(f"{ADDON_MODULE} did not enable")


def disable_addon() -> None:
    addon_utils.disable(ADDON_MODULE, default_set=True, handle_error=_raise)


def _raise(error: BaseException) -> None:
    raise error



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
