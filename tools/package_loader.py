"""Import the engine and the tiny-model builder from this checkout without bpy (tests and the benchmark).

The repo root is the add-on package, but its folder may have any name (CI
clones under another one) and its ``__init__.py`` imports bpy. ``import_engine``
registers the repo root as a package called ``latent_textures`` *without
running its ``__init__.py``* and imports ``latent_textures.engine`` from it: the
same relative imports Blender resolves under ``bl_ext.<repo>.latent_textures``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "latent_textures"
TINY_MODELS = "latent_textures_tiny_models"


def import_subpackage(name: str) -> types.ModuleType:
    """``latent_textures.<name>`` (a bpy-free part such as ``engine`` or ``dependencies.pip``), without bpy."""
    if PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(REPO_ROOT)]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(REPO_ROOT)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


def import_engine() -> types.ModuleType:
    """``latent_textures.engine``, importable without bpy."""
    return import_subpackage("engine")


def import_tiny_models() -> types.ModuleType:
    """``tools/tiny_models.py`` as the module ``latent_textures_tiny_models``."""
    return load_by_path(TINY_MODELS, REPO_ROOT / "tools" / "tiny_models.py")


def load_by_path(name: str, path: Path) -> types.ModuleType:
    """A module from a file (tools/ and bench/ are not on sys.path), loaded once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
