"""INPAINT through the real diffusers inpaint pipelines: ordinary (4-channel) and dedicated
(9-channel) models, the kept pixels exactly the input's, feathering, all-white masks."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _image(seed: int = 0, height: int = 64, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0 * x], axis=-1)
    rgb += np.random.default_rng(seed).normal(0, 0.05, rgb.shape)
    return np.ascontiguousarray(np.clip(rgb, 0, 1).astype(np.float32))


def _mask(height: int = 64, width: int = 64) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[16:40, 24:56] = 1.0
    return mask


@pytest.fixture(scope="module")
def inpaint_module(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".inpaint")


@pytest.fixture(params=["sd", "sdxl", "sd-inpainting"])
def inpaint_model(request: pytest.FixtureRequest) -> tuple[str, Path]:
    fixture = {"sd": "tiny_sd_model", "sdxl": "tiny_sdxl_model", "sd-inpainting": "tiny_inpaint_model"}[request.param]
    return request.param, request.getfixturevalue(fixture)


@pytest.mark.parametrize("blur", [0, 4])
def test_pixels_outside_the_mask_come_back_exactly(
    engine: Any, make_request: Any, inpaint_module: Any, inpaint_model: tuple[str, Path], blur: int
) -> None:
    name, model = inpaint_model
    init, mask = _image(), _mask()
    request = make_request(
        model, mode="INPAINT", init_image=init, mask_image=mask, mask_blur=blur, strength=1.0, steps=2
    )
    result = engine.generate(request)
    rgb = result.image[..., :3]
    feathered = inpaint_module.feather_mask(mask, blur)
    kept = feathered == 0
    assert kept.sum() > 2000
    np.testing.assert_array_equal(rgb[kept], init[kept])  # bit for bit, not "almost"
    assert np.abs(rgb[mask == 1] - init[mask == 1]).mean() > 0.02  # the masked part was repainted
    assert (result.image[..., 3] == 1).all()
    assert result.recipe["mode"] == "INPAINT" and result.recipe["mask"] is True and result.recipe["mask_blur"] == blur
    pipe_class = type(engine._model.pipelines["INPAINT"]).__name__
    assert pipe_class == ("StableDiffusionXLInpaintPipeline" if name == "sdxl" else "StableDiffusionInpaintPipeline")
    assert engine._model.pipelines["INPAINT"].unet is engine._model.base.unet
    if blur:
        # the feathered edge blends: pixels just outside the hard mask changed, not fully
        edge = (feathered > 0) & (feathered < 1) & (mask == 0)
        assert edge.any() and not np.array_equal(rgb[edge], init[edge])


def test_an_all_white_mask_at_strength_1_ignores_the_input_like_img2img_at_strength_1(
    engine: Any, make_request: Any, inpaint_model: tuple[str, Path]
) -> None:
    _, model = inpaint_model
    white = np.ones((64, 64), np.float32)

    def run(init: np.ndarray) -> np.ndarray:
        request = make_request(model, mode="INPAINT", init_image=init, mask_image=white, strength=1.0, steps=2)
        return engine.generate(request).image

    first = run(_image(0))
    np.testing.assert_array_equal(run(_image(0)[::-1].copy()), first)  # nothing of the input is kept
    assert np.abs(first[..., :3] - _image(0)).mean() > 0.02


def test_strength_below_1_keeps_something_of_the_masked_input(
    engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    def run(init: np.ndarray) -> np.ndarray:
        request = make_request(tiny_sd_model, mode="INPAINT", init_image=init, mask_image=_mask(), strength=0.5, steps=4)
        return engine.generate(request).image

    assert not np.array_equal(run(_image(0)), run(_image(1)))


def test_a_dedicated_inpainting_model_also_runs_txt2img_and_img2img(
    engine: Any, make_request: Any, tiny_inpaint_model: Path
) -> None:
    txt = engine.generate(make_request(tiny_inpaint_model, steps=2))
    assert txt.image.shape == (64, 64, 4) and txt.image[..., :3].std() > 0.01
    assert engine._model.base.unet.config.in_channels == 9 and engine._model.family.inpainting
    assert txt.recipe["mask"] is False
    img = engine.generate(
        make_request(tiny_inpaint_model, mode="IMG2IMG", init_image=_image(), strength=0.5, steps=4)
    )
    other = engine.generate(
        make_request(tiny_inpaint_model, mode="IMG2IMG", init_image=_image(1), strength=0.5, steps=4)
    )
    assert not np.array_equal(img.image, other.image)  # below strength 1 the input shows through


def test_inpainting_with_a_controlnet_on_a_dedicated_inpainting_model(
    engine: Any, make_request: Any, control_image: Any, tiny_inpaint_model: Path, tiny_controlnet: Path
) -> None:
    init, mask = _image(), _mask()
    fields = {"mode": "INPAINT", "init_image": init, "mask_image": mask, "strength": 1.0, "steps": 2}
    controlled = engine.generate(
        make_request(
            tiny_inpaint_model, control="DEPTH", control_image=control_image(), control_model=str(tiny_controlnet),
            **fields,
        )
    )
    plain = engine.generate(make_request(tiny_inpaint_model, **fields))
    assert not np.array_equal(controlled.image, plain.image)
    np.testing.assert_array_equal(controlled.image[..., :3][mask == 0], init[mask == 0])
    names = {type(p).__name__ for p in engine._model.pipelines.values()}
    assert "StableDiffusionControlNetInpaintPipeline" in names


def test_feather_mask_reaches_exactly_blur_pixels(inpaint_module: Any) -> None:
    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 10:20] = 1
    np.testing.assert_array_equal(inpaint_module.feather_mask(mask, 0), mask)
    soft = inpaint_module.feather_mask(mask, 3)
    assert soft.dtype == np.float32 and soft.min() == 0 and soft.max() <= 1
    assert (soft[7:23, 7:23] > 0).all()  # 3 pixels of feather around the square
    outside = np.ones((32, 32), bool)
    outside[7:23, 7:23] = False
    assert (soft[outside] == 0).all()  # and nothing farther: those pixels are kept exactly
    assert 0.3 < soft[15, 10] < 0.7 and soft[15, 15] == pytest.approx(1.0)


def test_composite_is_exact_where_the_mask_is_zero(inpaint_module: Any) -> None:
    rng = np.random.default_rng(0)
    original = rng.random((8, 8, 4), dtype=np.float32)
    generated = rng.random((8, 8, 3), dtype=np.float32)
    mask = np.zeros((8, 8), np.float32)
    mask[2:4, 2:6] = 1.0
    mask[5, 5] = 0.25
    out = inpaint_module.composite(generated, original, mask)
    np.testing.assert_array_equal(out[mask == 0], original[..., :3][mask == 0])
    np.testing.assert_array_equal(out[mask == 1], generated[mask == 1])
    np.testing.assert_allclose(out[5, 5], 0.75 * original[5, 5, :3] + 0.25 * generated[5, 5], rtol=1e-6)
