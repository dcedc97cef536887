"""Material maps (issue 30) through the real engine and tiny Marigold pipelines loaded by the real loaders.

Random weights paint noise: these tests check shapes, ranges, plumbing (slots, refusals, progress, cancel,
recipes), where each map is read from (``target_properties``), the wrap of seamless maps and determinism;
never what only trained weights show (how good an albedo or a normal is).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _image(height: int = 48, width: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth colourful picture (the tiny VAE encodes structure, not noise)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = rng.random(3) * 6.28
    channels = [0.5 + 0.4 * np.sin(2 * np.pi * (x / width) * (c + 1) + 2 * np.pi * y / height + phase[c])
                for c in range(3)]
    return np.ascontiguousarray(np.stack(channels, axis=-1), dtype=np.float32)


@pytest.fixture
def maps_request(engine_api: Any, tiny_marigold_intrinsics: Path, tiny_marigold_normals: Path) -> Any:
    """``maps_request(**fields)``: every map of a 80x48 picture from the tiny Marigold models."""

    def make(**fields: Any) -> Any:
        values: dict[str, Any] = {
            "image": _image(), "maps": engine_api.MAP_KINDS, "pbr_model": str(tiny_marigold_intrinsics),
            "normals_model": str(tiny_marigold_normals),
        }
        values.update(fields)
        return engine_api.MaterialMapsRequest(**values)

    return make


def test_every_map_has_the_image_size_range_and_dtype(engine: Any, maps_request: Any) -> None:
    result = engine.material_maps(maps_request())
    maps = result.maps
    assert set(maps) == {"albedo", "roughness", "metallic", "normal", "height"}
    assert maps["albedo"].shape == (48, 80, 3) and maps["normal"].shape == (48, 80, 3)
    for grey in ("roughness", "metallic", "height"):
        assert maps[grey].shape == (48, 80)
    for name, values in maps.items():
        assert values.dtype == np.float32, name
        assert np.isfinite(values).all(), name
    for name in ("albedo", "roughness", "metallic", "height"):
        assert 0.0 <= maps[name].min() and maps[name].max() <= 1.0, name
    assert maps["height"].min() == 0.0 and maps["height"].max() == 1.0
    np.testing.assert_allclose(np.linalg.norm(maps["normal"], axis=-1), 1.0, atol=1e-5)


def test_recipes_name_the_map_the_model_and_its_knobs(engine: Any, maps_request: Any,
                                                      tiny_marigold_intrinsics: Path) -> None:
    result = engine.material_maps(maps_request(maps=("ROUGHNESS", "NORMAL"), ensemble_size=1, seed=5))
    assert set(result.maps) == {"roughness", "normal"}
    roughness = result.recipes["roughness"]
    assert roughness["pbr_map"] == "roughness" and roughness["pbr_model"] == str(tiny_marigold_intrinsics)
    assert (roughness["steps"], roughness["processing_resolution"], roughness["ensemble_size"]) == (2, 64, 1)
    assert roughness["seed"] == 5 and "model_revision" in roughness
    assert result.recipes["normal"]["pbr_map"] == "normal" and "normals_model" in result.recipes["normal"]


def test_progress_is_reported_per_map_step(engine: Any, maps_request: Any) -> None:
    events: list[Any] = []
    engine.material_maps(maps_request(steps=3), on_progress=events.append)
    maps_events = [(e.stage, e.detail, e.part, e.parts, e.step, e.total) for e in events if e.stage == "MAPS"]
    assert maps_events == [
        ("MAPS", "albedo, roughness, metallic", 1, 2, 1, 3),
        ("MAPS", "albedo, roughness, metallic", 1, 2, 2, 3),
        ("MAPS", "albedo, roughness, metallic", 1, 2, 3, 3),
        ("MAPS", "normal, height", 2, 2, 1, 3),
        ("MAPS", "normal, height", 2, 2, 2, 3),
        ("MAPS", "normal, height", 2, 2, 3, 3),
    ]
