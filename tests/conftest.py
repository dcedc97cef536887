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
def run_sync(engine_api: Any) -> Any:
    """``run_sync(pipe, views, prompt=..., generator=..., steps=..., guidance_scale=..., **sync_views)``: SYNC on a
    diffusers pipeline (its scheduler already set) through the engine's own path - ``sync.SyncViews``' check,
    arguments (noise, view groups fitted to memory) and ``around`` (synchronised scheduler, grouped forward),
    as ``generation.generate`` calls them - without loading a model through the engine. Returns the (V, C, h, w)
    final latents; ``sync_views``: ``SyncViews``' keywords (fraction, weight_exponent, observer, bake,
    control_images, on_progress, cancel_event, ...); ``weight_bytes``: as the engine passes them."""
    sync = importlib.import_module(engine_api.__name__ + ".sync")

    def run(pipe: Any, views: Any, *, prompt: str, generator: Any, steps: int, guidance_scale: float,
            negative_prompt: str | None = None, weight_bytes: int = 0, **sync_views: Any) -> Any:
        batch = sync.SyncViews(views, **sync_views)
        height, width = batch.plan.height * 8, batch.plan.width * 8
        batch.check(width, height, steps)
        kwargs = {"prompt": prompt, "negative_prompt": negative_prompt, "num_inference_steps": steps,
                  "guidance_scale": guidance_scale, "generator": generator, "output_type": "latent",
                  "height": height, "width": width}
        if batch.control_images is not None:
            kwargs["image"] = None  # the request's one control image; SyncViews puts one per view
        kwargs = batch.arguments(pipe, kwargs, weight_bytes=weight_bytes)
        with batch.around(pipe):
            latents = pipe(**kwargs).images
        run.last = batch
        return latents

    run.last = None
    return run
