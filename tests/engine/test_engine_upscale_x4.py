"""The dedicated x4 upscaler (``StableDiffusionUpscalePipeline``), tiled: a tiny one built from its config,
loaded through the real loaders (folder and hub cache) and run through ``Engine.upscale``."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

UPSCALER_REPO = "stabilityai/stable-diffusion-x4-upscaler"


@pytest.fixture(scope="module")
def x4_module(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".upscale_x4")


def _source(height: int = 40, width: int = 72, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    return ((noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1)) / 3).astype(np.float32)  # periodic, smooth-ish


def _request(engine_api: Any, upscaler: Any, **fields: Any) -> Any:
    values: dict[str, Any] = {"image": _source(), "model": "", "method": "X4_UPSCALER", "upscaler_model": str(upscaler),
                              "prompt": "stone", "factor": 4, "steps": 2, "seed": 5, "tile_size": 128,
                              "tile_overlap": 64, "control": "NONE"}
    values.update(fields)
    return engine_api.UpscaleRequest(**values)


def test_the_x4_upscaler_loads_and_runs_tiled_with_progress_per_tile(engine_api, new_engine, tiny_x4_upscaler):
    engine = new_engine(precision="FP32")
    events: list[Any] = []
    result = engine.upscale(_request(engine_api, tiny_x4_upscaler), on_progress=events.append)
    again = engine.upscale(_request(engine_api, tiny_x4_upscaler))
    assert result.image.shape == (160, 288, 4)
    np.testing.assert_array_equal(result.image, again.image)  # the seed per tile comes from the seed
    recipe = result.recipe["upscale"]
    # 32-px input tiles (128 out) with 16 px (64 out) of overlap over 40x72: 2 rows x 4 columns
    assert recipe["method"] == "X4_UPSCALER" and recipe["tiles"] == 8 and recipe["tile_size"] == 128
    assert recipe["upscaler_model"] == str(tiny_x4_upscaler) and recipe["noise_level"] == 20
    assert {(e.part, e.parts) for e in events} == {(k, 8) for k in range(1, 9)}
    assert [e.step for e in events if e.part == 1] == [1, 2] and {e.total for e in events} == {2}
    assert engine.load_count == 1
    other = engine.upscale(_request(engine_api, tiny_x4_upscaler, seed=6))
    assert not np.array_equal(result.image, other.image)


def test_x2_is_the_x4_result_averaged_over_2x2_blocks(engine_api, engine, tiny_x4_upscaler, x4_module):
    x4 = engine.upscale(_request(engine_api, tiny_x4_upscaler)).image[..., :3]
    x2 = engine.upscale(_request(engine_api, tiny_x4_upscaler, factor=2))
    assert x2.image.shape == (80, 144, 4) and x2.recipe["upscale"]["factor"] == 2
    np.testing.assert_array_equal(x2.image[..., :3], x4_module.halve(x4))


def test_odd_sizes_are_padded_for_the_model_and_cropped_back(engine_api, engine, tiny_x4_upscaler):
    result = engine.upscale(_request(engine_api, tiny_x4_upscaler, image=_source(21, 37)))
    assert result.image.shape == (84, 148, 4) and np.isfinite(result.image).all()


def test_the_upscaler_has_its_own_slot_beside_the_artists_model(
        engine_api, new_engine, tiny_x4_upscaler, tiny_sd_model):
    engine = new_engine()
    generation = engine_api.GenerationRequest(prompt="stone", model=str(tiny_sd_model), width=64, height=64, steps=2,
                                              seed=1)
    first = engine.generate(generation)
    engine.upscale(_request(engine_api, tiny_x4_upscaler))
    assert engine.loaded_model().source == str(tiny_sd_model)
    np.testing.assert_array_equal(engine.generate(generation).image, first.image)
    engine.upscale(_request(engine_api, tiny_x4_upscaler))
    assert engine.load_count == 2  # one load each, neither evicted the other
    packed_weights = importlib.import_module(engine_api.__name__ + ".packed_weights")
    upscaler = engine.cache.newest("upscaler").pipe
    assert packed_weights.packable_bytes((upscaler.unet, upscaler.vae), installed=True) == 0  # no gain there: not packed
    engine.free()
    engine.upscale(_request(engine_api, tiny_x4_upscaler))
    assert engine.load_count == 3  # free() dropped the upscaler too


def test_wrapped_x4_upscale_keeps_a_seamless_texture_seamless(engine_api, engine, tiny_x4_upscaler):
    """The seam metric of the engine's seamless tests: across the wrap, neighbours differ like interior ones."""
    ratios: dict[str, list[float]] = {"NONE": [], "BOTH": []}
    for seamless, values in ratios.items():
        for seed in range(3):
            out = engine.upscale(_request(engine_api, tiny_x4_upscaler, seamless=seamless, seed=seed)).image[..., :3]
            values.append(np.abs(out[:, -1] - out[:, 0]).mean() / np.abs(np.diff(out, axis=1)).mean())
            values.append(np.abs(out[-1] - out[0]).mean() / np.abs(np.diff(out, axis=0)).mean())
    assert np.mean(ratios["BOTH"]) <= 1.3, ratios
    assert np.mean(ratios["NONE"]) > 1.5, ratios  # the metric does see a seam where there is one


def test_a_whole_wrapped_axis_in_one_tile_wraps_the_model_itself(engine_api, engine, tiny_x4_upscaler):
    """One tile spanning the whole image: its own convolutions pad circularly (the same seed without wrap
    gives other pixels), and the result wraps as smoothly as its interior."""
    source = _source(32, 32)
    wrapped = engine.upscale(_request(engine_api, tiny_x4_upscaler, image=source, seamless="BOTH"))
    plain = engine.upscale(_request(engine_api, tiny_x4_upscaler, image=source))
    assert wrapped.recipe["upscale"]["tiles"] == plain.recipe["upscale"]["tiles"] == 1
    assert not np.array_equal(wrapped.image, plain.image)
    out = wrapped.image[..., :3]
    assert np.abs(out[:, -1] - out[:, 0]).mean() <= 1.3 * np.abs(np.diff(out, axis=1)).mean()
    assert np.abs(out[-1] - out[0]).mean() <= 1.3 * np.abs(np.diff(out, axis=0)).mean()


def test_the_default_upscaler_is_read_from_the_hub_cache_offline(
        engine_api, new_engine, tiny_models, tiny_x4_upscaler, tmp_path):
    tiny_models.install_in_hf_cache(tiny_x4_upscaler, tmp_path, UPSCALER_REPO)
    engine = new_engine(cache_dir=str(tmp_path), offline=True)
    result = engine.upscale(_request(engine_api, tiny_x4_upscaler, upscaler_model=""))
    recipe = result.recipe["upscale"]
    assert recipe["upscaler_model"] == UPSCALER_REPO and UPSCALER_REPO.replace("/", "--") in recipe["upscaler_files"]
    assert result.image.shape == (160, 288, 4)


def test_cancel_stops_within_a_step(engine_api, engine, tiny_x4_upscaler):
    cancel = threading.Event()
    events: list[Any] = []

    def on_progress(event: Any) -> None:
        events.append(event)
        cancel.set()

    with pytest.raises(engine_api.GenerationCancelled):
        engine.upscale(_request(engine_api, tiny_x4_upscaler), on_progress=on_progress, cancel_event=cancel)
    assert len(events) == 1


def test_the_upscaler_is_refused_as_a_base_model_and_a_base_model_as_the_upscaler(
    engine_api, engine, tiny_x4_upscaler, tiny_sd_model
):
    with pytest.raises(engine_api.EngineError, match="StableDiffusionUpscalePipeline.*x4 upscaler model"):
        engine.generate(engine_api.GenerationRequest(prompt="stone", model=str(tiny_x4_upscaler), width=64, height=64,
                                                     steps=2))
    with pytest.raises(engine_api.EngineError, match="is a StableDiffusionPipeline, not an x4 upscaler"):
        engine.upscale(_request(engine_api, tiny_sd_model))


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"method": "ESRGAN"}, "method"),
        ({"noise_level": 400}, "noise_level"),
        ({"noise_level": 2.5}, "noise_level"),
    ],
)
def test_bad_x4_requests_name_the_field(engine_api, tiny_x4_upscaler, fields, match):
    with pytest.raises(ValueError, match=match):
        _request(engine_api, tiny_x4_upscaler, **fields).validate()


def test_the_x4_upscaler_needs_the_x4_image_in_memory_even_for_x2(engine_api):
    upscale = importlib.import_module(engine_api.__name__ + ".upscale")
    upscale.check_fits(3000, 3000, 2, memory=16 * 2**30)  # tiled diffusion: x2 fits
    with pytest.raises(ValueError, match="x4 upscaler.*even for x2"):
        upscale.check_fits(3000, 3000, 2, memory=16 * 2**30, x4_upscaler=True)
