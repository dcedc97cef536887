"""Reference images (IP-Adapter) through diffusers' real load_ip_adapter on the tiny models: strength 0 and off
exactly plain, the image and strength reaching the adapter, the processor order with the engine's own
processors (attention slicing, the insight recorder), clean failed loads, and every pipeline the engine builds."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def picture(seed: int, height: int = 40, width: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)


@pytest.fixture
def reference(engine_api: Any, tiny_ip_adapter: Path) -> Any:
    """``reference(seed=0, strength=0.8, model=tiny_ip_adapter)``: a ``ReferenceSpec`` with a random picture."""

    def make(seed: int = 0, strength: float = 0.8, model: str | Path | None = None) -> Any:
        return engine_api.ReferenceSpec(picture(seed), strength, str(tiny_ip_adapter if model is None else model))

    return make


@pytest.fixture(scope="module")
def processors_module(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".attention_processors")


def unet_processors(engine: Any) -> dict[str, Any]:
    return dict(engine._model.base.unet.attn_processors)


def test_reference_changes_the_pixels_and_off_after_on_restores_them_exactly(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, tiny_ip_adapter: Path
) -> None:
    engine = new_engine()
    plain = engine.generate(make_request(tiny_sd_model)).image
    processors_before = unet_processors(engine)
    styled = engine.generate(make_request(tiny_sd_model, reference=reference(0)))
    assert not np.array_equal(styled.image, plain)
    other = engine.generate(make_request(tiny_sd_model, reference=reference(1))).image
    assert not np.array_equal(other, styled.image)  # a different picture, the same seed: another result
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)  # off: exactly plain
    after = unet_processors(engine)
    assert all(after[name] is processors_before[name] for name in processors_before)  # the very same processors
    assert engine._model.base.unet.encoder_hid_proj is None
    np.testing.assert_array_equal(
        engine.generate(make_request(tiny_sd_model, reference=reference(0))).image, styled.image
    )
    assert engine.load_count == 1  # loading and unloading the adapter never reloads the model
    recipe = styled.recipe["reference"]
    assert recipe["model"] == str(tiny_ip_adapter) and recipe["strength"] == 0.8 and recipe["applied"] is True
    assert recipe["revision"].startswith("sha256:") and styled.ignored == []
    assert "reference" not in engine.generate(make_request(tiny_sd_model)).recipe


def test_strength_zero_is_exactly_no_reference_and_loads_nothing(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path
) -> None:
    engine = new_engine()
    plain = engine.generate(make_request(tiny_sd_model)).image
    result = engine.generate(make_request(tiny_sd_model, reference=reference(0, strength=0.0)))
    np.testing.assert_array_equal(result.image, plain)
    assert result.recipe["reference"]["applied"] is False and result.recipe["reference"]["strength"] == 0.0
    assert engine.cache.loads["ip_adapter"] == 0  # no encoder read for nothing
