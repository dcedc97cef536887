"""Load this repository as a Blender extension into the bpy module, the way Blender loads one.

Blender imports an extension as ``bl_ext.<repo module>.<extension id>`` from a
repository directory, and the package directory must be named like the
extension id. A checkout may live in a folder with another name, so
:func:`make_extension_repo` makes a temporary repository directory holding a
symlink ``latent_textures -> <repo root>`` that :func:`ensure_repo` registers
as a user repository.

Used by the launcher (``tools/latent_textures.py``), ``tools/demo.py`` and the
test harness (``tests/blender/harness.py``). Nothing here imports bpy at module
level: :func:`isolate_user_resources` must run before the first ``import bpy``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXTENSION_ID = "latent_textures"


def addon_module(repo_module: str) -> str:
    return f"bl_ext.{repo_module}.{EXTENSION_ID}"


def isolate_user_resources(folder: str | None = None, *, prefix: str = "lt_blender_user_") -> str:
    """Point Blender's user resources (config, extensions, add-on user folders) at ``folder`` (default: a new temp dir).

    Must run before bpy is imported: Blender reads ``BLENDER_USER_RESOURCES`` once.
    """
    folder = folder or tempfile.mkdtemp(prefix=prefix)
    os.environ["BLENDER_USER_RESOURCES"] = folder
    return folder


def make_extension_repo(prefix: str = "lt_extension_repo_") -> str:
    """A temp directory holding ``latent_textures -> REPO_ROOT``: an extension repository with this checkout in it."""
    repo_dir = tempfile.mkdtemp(prefix=prefix)
    os.symlink(REPO_ROOT, os.path.join(repo_dir, EXTENSION_ID), target_is_directory=True)
    return repo_dir


def remove_extension_repo(repo_dir: str) -> None:
    """Remove a directory made by :func:`make_extension_repo` (the link only, never the checkout)."""
    link = os.path.join(repo_dir, EXTENSION_ID)
    if os.path.islink(link):
        os.unlink(link)
    shutil.rmtree(repo_dir, ignore_errors=True)


def ensure_repo(repo_dir: str, repo_module: str) -> None:
    import bpy

    repos = bpy.context.preferences.extensions.repos
    if not any(r.module == repo_module for r in repos):
        repos.new(name=repo_module, module=repo_module, custom_directory=repo_dir, source="USER")


def _raise(error: BaseException) -> None:
    raise error


def enable(module: str) -> None:
    import addon_utils
    import bpy

    addon_utils.enable(module, default_set=True, handle_error=_raise)
    if module not in bpy.context.preferences.addons:
        raise RuntimeError(f"{module} did not enable")


def disable(module: str) -> None:
    import addon_utils

    addon_utils.disable(module, default_set=True, handle_error=_raise)


def load_extension(repo_module: str, repo_dir: str | None = None):
    """Register a repository holding this checkout and enable the extension; returns its package module."""
    repo_dir = repo_dir or make_extension_repo()
    ensure_repo(repo_dir, repo_module)
    module = addon_module(repo_module)
    enable(module)
    return sys.modules[module]
