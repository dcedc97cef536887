"""Importing the pure ``dependencies`` package in plain pytest, without bpy.

``dependencies`` uses relative imports only within itself, so it is imported as
``latent_textures.dependencies`` from the repo root registered as a package
without running the add-on's ``__init__.py`` (which imports bpy) - the same
trick tests/conftest.py uses for the engine.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "latent_textures"


def import_dependencies(module: str = "") -> types.ModuleType:
    if PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(REPO_ROOT)]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(REPO_ROOT)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.dependencies" + (f".{module}" if module else ""))

