"""Engine.upscale through the real pipeline (tiny model): size, recipe, determinism, strength 0, wrap, bad input."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def upscale_module(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".upscale")


def _source(height: int = 40, width: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 3.0)], axis=-1)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _request(engine_api: Any, model: Any, **fields: Any) -> Any:
    values: dict[str, Any] = {"image": _source(), "model": str(model), "prompt": "stone", "factor": 2, "steps": 4,
                              "strength": 0.5, "seed": 3, "tile_size": 128, "tile_overlap": 64, "control": "NONE"}
    values.update(fields)
    return engine_api.UpscaleRequest(**values)


def test_strength_zero_is_the_lanczos_resize_exactly_and_runs_no_model(engine_api, upscale_module, new_engine, tiny_sd_model):
    engine = new_engine()
    request = _request(engine_api, tiny_sd_model, strength=0.0)
    result = engine.upscale(request)
    tiles = importlib.import_module(engine_api.__name__ + ".tiles")
    expected = tiles.resize(request.image, 2, wrap_x=False, wrap_y=False)
    np.testing.assert_array_equal(result.image[..., :3], expected)
    assert engine.load_count == 0
    assert result.recipe["upscale"]["method"] == "LANCZOS" and result.recipe["upscale"]["factor"] == 2


def test_tiled_redraw_gives_the_size_a_recipe_and_the_same_pixels_for_the_same_seed(engine_api, engine, tiny_sd_model):
    events: list[Any] = []
    first = engine.upscale(_request(engine_api, tiny_sd_model, tile_overlap=64), on_progress=events.append)
    again = engine.upscale(_request(engine_api, tiny_sd_model, tile_overlap=64))
    assert first.image.shape == (80, 192, 4)
    np.testing.assert_array_equal(first.image, again.image)
    recipe = first.recipe["upscale"]
    assert recipe["tiles"] == len({(e.part, e.parts) for e in events if e.stage == "DENOISE"}) > 1
    assert {e.parts for e in events if e.stage == "DENOISE"} == {recipe["tiles"]}
    other = engine.upscale(_request(engine_api, tiny_sd_model, seed=4))
    assert not np.array_equal(first.image, other.image)


def test_tile_seeds_differ_per_tile_and_follow_the_seed(upscale_module):
    seeds = [upscale_module.tile_seed(7, k) for k in range(6)]
    assert len(set(seeds)) == 6 and seeds == [upscale_module.tile_seed(7, k) for k in range(6)]
    assert upscale_module.tile_seed(8, 0) != seeds[0]


def test_too_large_a_factor_names_the_largest_that_fits(upscale_module):
    with pytest.raises(ValueError, match="largest factor that fits is x2"):
        upscale_module.check_fits(3000, 3000, 4, memory=16 * 2**30)
    with pytest.raises(ValueError, match="no factor fits"):
        upscale_module.check_fits(9000, 9000, 2, memory=None)
    upscale_module.check_fits(1024, 1024, 4, memory=64 * 2**30)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"factor": 3}, "factor"),
        ({"strength": 1.5}, "strength"),
        ({"strength": 0.1, "steps": 4}, "strength x steps"),
        ({"tile_overlap": 16}, "tile_overlap"),
        ({"tile_size": 60}, "tile_size"),
        ({"seamless": "XY"}, "seamless"),
        ({"control": "DEPTH"}, "control"),
        ({"image": np.zeros((8, 8, 3), dtype=np.float64)}, "image"),
    ],
)
def test_bad_requests_name_the_field(engine_api, tiny_sd_model, fields, match):
    with pytest.raises(ValueError, match=match):
        _request(engine_api, tiny_sd_model, **fields).validate()


def test_wrapped_upscale_keeps_a_seamless_texture_seamless(engine_api, engine, tiny_sd_model):
    """Across the wrap, neighbours differ like interior ones (wrap mode); without wrapping they do not."""
    source = np.random.default_rng(0).random((40, 96, 3), dtype=np.float32)
    source = ((source + np.roll(source, 1, 0) + np.roll(source, 1, 1)) / 3).astype(np.float32)  # periodic
    ratios: dict[str, list[float]] = {"NONE": [], "BOTH": []}
    for seamless, values in ratios.items():
        for seed in range(3):
            request = _request(engine_api, tiny_sd_model, image=source, seamless=seamless, seed=seed)
            out = engine.upscale(request).image[..., :3]
            values.append(np.abs(out[:, -1] - out[:, 0]).mean() / np.abs(np.diff(out, axis=1)).mean())
            values.append(np.abs(out[-1] - out[0]).mean() / np.abs(np.diff(out, axis=0)).mean())
    assert np.mean(ratios["BOTH"]) <= 1.3, ratios
    assert np.mean(ratios["NONE"]) > 1.5, ratios  # the metric does see a seam where there is one


def test_tile_controlnet_conditions_every_tile_and_is_recorded(engine_api, engine, tiny_sd_model, tiny_tile_controlnet):
    plain = engine.upscale(_request(engine_api, tiny_sd_model))
    tiled = engine.upscale(_request(engine_api, tiny_sd_model, control="TILE", control_model=str(tiny_tile_controlnet)))
    again = engine.upscale(_request(engine_api, tiny_sd_model, control="TILE", control_model=str(tiny_tile_controlnet)))
    np.testing.assert_array_equal(tiled.image, again.image)
    assert not np.array_equal(plain.image, tiled.image)  # the tile ControlNet steers the redraw
    recipe = tiled.recipe["upscale"]
    assert recipe["control"] == "TILE" and recipe["control_model"] == str(tiny_tile_controlnet)
