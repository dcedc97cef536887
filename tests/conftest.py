"""Shared pytest fixtures (engine tests and Blender tests).

Nothing heavy at import time: no bpy, no torch. The tiny models are built once
per session, on first use.

The engine is imported without bpy through ``tools/package_loader.py``: the
repo root registered as a package called ``latent_textures`` without running its
bpy-importing ``__init__.py`` (CI clones the repo under another folder name).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

# One torch thread per test process, set before torch is imported so that the Blender, CLI and benchmark
# subprocesses the tests start inherit it. `make test` runs a pytest-xdist worker per core, and OpenMP
# threads competing for the same cores spin: every denoising step 5-20x slower (measured). Tiny models gain
# nothing from threads, and pixels are compared only between runs with the same thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_package_loader() -> types.ModuleType:
    """``tools/package_loader.py`` (shared with the benchmark), loaded by path."""
    name = "latent_textures_package_loader"  # the name tests/dependencies/deps_support.py uses too
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "package_loader.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_package_loader = _load_package_loader()
import_engine = _package_loader.import_engine
import_tiny_models = _package_loader.import_tiny_models


@pytest.fixture(scope="session")
def engine_api() -> types.ModuleType:
    """The ``engine`` package (public API)."""
    return import_engine()


@pytest.fixture(scope="session")
def geometry_api() -> types.ModuleType:
    """The bpy-free ``geometry`` package (camera frames, z-buffer, normals)."""
    return _package_loader.import_subpackage("geometry")


@pytest.fixture(scope="session")
def tiny_models() -> Any:
    """The ``tools/tiny_models.py`` module."""
    return import_tiny_models()


@pytest.fixture(scope="session")
def tiny_sd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny SD-1.x-like diffusers pipeline (model_index.json), built once per session."""
    return import_tiny_models().build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_tile_controlnet(tmp_path_factory: pytest.TempPathFactory, tiny_sd_model: Path) -> Path:
    """A tiny ControlNet for ``tiny_sd_model`` (the Upscale tests' tile ControlNet), built once per session."""
    return import_tiny_models().build_tiny_controlnet(tmp_path_factory.mktemp("tile-controlnet"), tiny_sd_model,
                                                      seed=11)


@pytest.fixture(scope="session")
def tiny_x4_upscaler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny x4 upscaler pipeline (StableDiffusionUpscalePipeline), built once per session."""
    return import_tiny_models().build_tiny_x4_upscaler(tmp_path_factory.mktemp("x4") / "tiny-x4")


@pytest.fixture(scope="session")
def tiny_lcm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny few-step LCM pipeline (LatentConsistencyModelPipeline + LCMScheduler), built once."""
    return import_tiny_models().build_tiny_lcm(tmp_path_factory.mktemp("models") / "tiny-lcm")


@pytest.fixture(scope="session")
def tiny_sdxl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny SDXL-like diffusers pipeline, built once per session."""
    return import_tiny_models().build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_single_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD as one LDM-layout .safetensors (same weights as ``tiny_sd_model``); configs in ``<dir>/config``."""
    return import_tiny_models().build_tiny_single_file(tmp_path_factory.mktemp("single-file"))


@pytest.fixture(scope="session")
def tiny_marigold_intrinsics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``MarigoldIntrinsicsPipeline`` with the appearance model's targets (albedo; roughness, metallicity)."""
    return import_tiny_models().build_tiny_marigold(tmp_path_factory.mktemp("marigold") / "tiny-iid", seed=21)


@pytest.fixture(scope="session")
def tiny_marigold_normals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``MarigoldNormalsPipeline``, built once per session."""
    return import_tiny_models().build_tiny_marigold(tmp_path_factory.mktemp("marigold") / "tiny-normals",
                                                    kind="normals", seed=31)


@pytest.fixture(scope="session")
def tiny_ip_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_sd_model: Path) -> Path:
    """An IP-Adapter for ``tiny_sd_model``, laid out like h94/IP-Adapter: ``<root>/models/ip-adapter_sd15.safetensors``
    (returned) with its tiny image encoder in ``<root>/models/image_encoder``; built once per session."""
    return import_tiny_models().build_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter") / "IP-Adapter",
                                                      tiny_sd_model)


@pytest.fixture(scope="session")
def tiny_ip_adapter_sdxl(tiny_ip_adapter: Path, tiny_sdxl_model: Path) -> Path:
    """An IP-Adapter for ``tiny_sdxl_model`` beside ``tiny_ip_adapter``, as h94 keeps its SDXL ViT-H one:
    ``<root>/sdxl_models/ip-adapter_sdxl_vit-h.safetensors`` reading the shared ``<root>/models/image_encoder``."""
    tiny = import_tiny_models()
    return tiny.build_tiny_ip_adapter(tiny_ip_adapter.parent.parent, tiny_sdxl_model,
                                      weight_name=tiny.IP_ADAPTER_SDXL_VIT_H, seed=3)


@pytest.fixture(scope="session")
def run_sync(engine_api: Any) -> Any:
    """``run_sync(pipe, views, prompt=..., generator=..., steps=..., guidance_scale=..., **sync_views)``: SYNC on a
    diffusers pipeline through the engine's own path (``sync.run_views``); returns the final latents and keeps the
    run's ``SyncViews`` as ``run_sync.last``."""
    sync = importlib.import_module(engine_api.__name__ + ".sync")

    def run(pipe: Any, views: Any, **arguments: Any) -> Any:
        latents, run.last = sync.run_views(pipe, views, **arguments)
        return latents

    run.last = None
    return run
