"""Importing the pure ``dependencies`` package in plain pytest, without bpy.

``dependencies`` uses relative imports only within itself, so it is imported as
``latent_textures.dependencies`` from the repo root registered as a package
without running the add-on's ``__init__.py`` (which imports bpy) - the same
trick tests/conftest.py uses for the engine (tools/package_loader.py).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_LOADER = "latent_textures_package_loader"


def _package_loader() -> types.ModuleType:
    """``tools/package_loader.py`` (shared with tests/conftest.py and the benchmark), loaded by path once."""
    if _LOADER not in sys.modules:
        spec = importlib.util.spec_from_file_location(_LOADER, REPO_ROOT / "tools" / "package_loader.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_LOADER] = module
        spec.loader.exec_module(module)
    return sys.modules[_LOADER]


def import_dependencies(module: str = "") -> types.ModuleType:
    return _package_loader().import_subpackage("dependencies" + (f".{module}" if module else ""))

