"""Shared pytest fixtures (engine tests and Blender tests).

Nothing heavy at import time: no bpy, no torch. The tiny models are built once
per session, on first use.

The repo root is the add-on package, but CI clones it under another folder name
and its ``__init__.py`` imports bpy. ``import_engine()`` therefore registers the
repo root as a namespace-like package called ``latent_textures`` *without running
its ``__init__.py``* and imports ``latent_textures.engine`` from it - the same
relative imports Blender resolves under ``bl_ext.<repo>.latent_textures``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "latent_textures"


def import_engine() -> types.ModuleType:
    """``latent_textures.engine``, importable without bpy (see the module docstring)."""
    if PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(REPO_ROOT)]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(REPO_ROOT)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.engine")


def import_tiny_models() -> types.ModuleType:
    """``tools/tiny_models.py`` (not a package) as the module ``latent_textures_tiny_models``."""
    name = "latent_textures_tiny_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "tiny_models.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def engine_api() -> types.ModuleType:
    """The ``engine`` package (public API)."""
    return import_engine()


@pytest.fixture(scope="session")
def tiny_models() -> Any:
    """The ``tools/tiny_models.py`` module."""
    return import_tiny_models()


@pytest.fixture(scope="session")
def tiny_sd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny SD-1.x-like diffusers pipeline (model_index.json), built once per session."""
    return import_tiny_models().build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny SDXL-like diffusers pipeline, built once per session."""
    return import_tiny_models().build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl")
