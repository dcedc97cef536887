"""Fixtures for the engine tests (plain pytest, no bpy). Shared ones live in ../conftest.py."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

SD15_CONFIG_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # what diffusers infers for an SD-1.x checkpoint


@pytest.fixture(autouse=True)
def _quiet_library_warnings() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture(autouse=True)
def _no_hub_offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide offline-ness themselves; a developer's HF_HUB_OFFLINE must not leak in."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture(autouse=True)
def _empty_standard_hub_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The standard Hugging Face cache (read after ``cache_dir``) is an empty folder: a developer's own
    ~/.cache/huggingface must not change what a test finds."""
    from huggingface_hub import constants

    folder = tmp_path_factory.mktemp("standard-hub-cache")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def engine(engine_api: Any) -> Any:
    """One CPU engine shared by tests that do not count loads."""
    eng = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    yield eng
    eng.free()


@pytest.fixture
def new_engine(engine_api: Any) -> Any:
    """Factory for fresh engines (for load counting); all are freed at teardown, by one garbage collection
    for them all (``Engine.free`` collects once per engine: a quarter of a second each)."""
    import gc

    made: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("device", "CPU")
        eng = engine_api.Engine(engine_api.EngineOptions(**options))
        made.append(eng)
        return eng

    yield make
    made.clear()
    gc.collect()


@pytest.fixture
def make_request(engine_api: Any) -> Any:
    """``make_request(model, **fields)``: a small, fast request (64x64, 3 steps, seed 7)."""

    def make(model: Path | str, **fields: Any) -> Any:
        values: dict[str, Any] = {"prompt": "red brick wall", "width": 64, "height": 64, "steps": 3, "seed": 7}
        values.update(fields)
        return engine_api.GenerationRequest(model=str(model), **values)

    return make


@pytest.fixture
def pipeline_of() -> Any:
    """``pipeline_of(engine, mode)``: the diffusers pipeline an engine ran ``mode`` with (reads a private attribute)."""

    def get(engine: Any, mode: str = "TXT2IMG") -> Any:
        return engine._model.pipelines[mode]

    return get


@pytest.fixture(scope="session")
def tiny_sd2_v_model(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Path:
    """An SD-2.x-like v-prediction pipeline folder."""
    return tiny_models.build_tiny_sd(
        tmp_path_factory.mktemp("models") / "tiny-sd2-v", prediction_type="v_prediction", sd2=True
    )


@pytest.fixture(scope="session")
def single_file_cache(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any, tiny_single_file: Path) -> Path:
    """An HF cache folder holding the tiny configs under the SD-1.5 repo id, as a one-time config download leaves it."""
    cache = tmp_path_factory.mktemp("hf-cache-configs")
    tiny_models.install_in_hf_cache(tiny_single_file.parent / "config", cache, SD15_CONFIG_REPO)
    return cache


# --- ControlNets, inpainting and depth models, LoRAs (issue 10) ---------------------------------------

SD15_CONTROLNET_CONFIG_REPO = "lllyasviel/control_v11p_sd15_canny"  # what diffusers infers for an SD-1.x ControlNet file


@pytest.fixture(scope="session")
def tiny_controlnet(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any, tiny_sd_model: Path) -> Path:
    """A diffusers ControlNet folder for the tiny SD (non-zero output convolutions)."""
    return tiny_models.build_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "tiny-cn", tiny_sd_model)


@pytest.fixture(scope="session")
def tiny_controlnet_file(tiny_controlnet: Path) -> Path:
    """The same ControlNet as one .safetensors file (diffusers key names); its config in the folder beside it."""
    from safetensors.torch import load_file, save_file

    path = tiny_controlnet.parent / "tiny-cn-single.safetensors"
    if not path.exists():
        save_file(load_file(str(tiny_controlnet / "diffusion_pytorch_model.safetensors")), str(path))
    return path


@pytest.fixture(scope="session")
def tiny_controlnet_sdxl(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any, tiny_sdxl_model: Path) -> Path:
    return tiny_models.build_tiny_controlnet(tmp_path_factory.mktemp("controlnets") / "tiny-cn-xl", tiny_sdxl_model)


@pytest.fixture(scope="session")
def tiny_inpaint_model(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Path:
    """A dedicated inpainting model (9-channel UNet, StableDiffusionInpaintPipeline)."""
    return tiny_models.build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd-inpaint", kind="inpaint")


@pytest.fixture(scope="session")
def tiny_depth_model(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Path:
    """An SD-2-depth-like model (5-channel UNet, StableDiffusionDepth2ImgPipeline, no depth estimator)."""
    return tiny_models.build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd2-depth", kind="depth", sd2=True)


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any, tiny_sd_model: Path) -> Path:
    """A LoRA .safetensors (diffusers format) for the tiny SD."""
    return tiny_models.build_tiny_lora(tmp_path_factory.mktemp("loras") / "tiny-lora", tiny_sd_model)


@pytest.fixture(scope="session")
def tiny_lora_sdxl(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any, tiny_sdxl_model: Path) -> Path:
    """A LoRA .safetensors for the tiny SDXL."""
    return tiny_models.build_tiny_lora(tmp_path_factory.mktemp("loras") / "tiny-lora-xl", tiny_sdxl_model, seed=1)


@pytest.fixture
def control_image() -> Any:
    """``control_image(seed)``: a smooth (64, 64, 3) depth-like control image (a sphere in front of a ramp)."""
    import numpy as np

    def make(seed: int = 0, height: int = 64, width: int = 64) -> Any:
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        cy, cx = height * (0.3 + 0.4 * ((seed * 37) % 10) / 10), width * (0.3 + 0.4 * ((seed * 53) % 10) / 10)
        r = np.sqrt((y - cy) ** 2 + (x - cx) ** 2) / (0.3 * min(height, width))
        sphere = np.clip(1.0 - r**2, 0.0, 1.0)
        value = np.maximum(sphere, 0.2 * x / width).astype(np.float32)
        return np.ascontiguousarray(np.repeat(value[..., None], 3, axis=-1))

    return make
