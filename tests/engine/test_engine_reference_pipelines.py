"""The reference image on every pipeline the engine builds (img2img, inpaint, ControlNet, LoRAs, LCM, SDXL),
on the ones that take none (SD 2 depth-to-image, the x4 upscaler: said, never silently dropped), and its image
embedding computed once for every view of SYNC and every tile of an upscale (the real encoder's calls counted)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((40, 50, 3)).astype(np.float32)


@contextlib.contextmanager
def encoder_calls() -> Iterator[list[int]]:
    """Counts the forward calls of every CLIP image encoder while open (the real module, not our bookkeeping)."""
    import torch

    calls: list[int] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        if type(module).__name__ == "CLIPVisionModelWithProjection":
            calls.append(1)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def _smooth(seed: int, height: int = 64, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / 16.0
    return np.clip(np.stack([0.5 + 0.4 * np.sin(x + rng.random() * 6), 0.5 + 0.4 * np.cos(y), 0.4 + 0 * x], -1),
                   0, 1).astype(np.float32)


CASES = ["img2img", "inpaint", "controlnet", "lora", "no_guidance", "lcm", "inpaint_model", "sdxl_img2img",
         "sdxl_inpaint", "sdxl_controlnet"]


@pytest.mark.parametrize("case", CASES)
def test_every_pipeline_takes_the_reference_and_off_restores_it(
    case: str, request: pytest.FixtureRequest, new_engine: Any, make_request: Any, engine_api: Any,
    tiny_sd_model: Path, tiny_ip_adapter: Path, control_image: Any,
) -> None:
    model = {"lcm": "tiny_lcm_model", "inpaint_model": "tiny_inpaint_model"}.get(case)
    if case.startswith("sdxl"):
        model, case = "tiny_sdxl_model", case.removeprefix("sdxl_")
        tiny_ip_adapter = request.getfixturevalue("tiny_ip_adapter_sdxl")
    model_path = request.getfixturevalue(model) if model else tiny_sd_model
    fields: dict[str, Any] = {}
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 8:40] = 1.0
    if case == "img2img":
        fields = {"mode": "IMG2IMG", "init_image": _smooth(1), "strength": 0.7}
    elif case in ("inpaint", "inpaint_model"):
        fields = {"mode": "INPAINT", "init_image": _smooth(1), "mask_image": mask, "strength": 1.0}
    elif case == "controlnet":
        controlnet = "tiny_controlnet_sdxl" if model == "tiny_sdxl_model" else "tiny_controlnet"
        fields = {"control": "DEPTH", "control_image": control_image(0),
                  "control_model": str(request.getfixturevalue(controlnet))}
    elif case == "lora":
        fields = {"loras": (engine_api.LoraSpec(str(request.getfixturevalue("tiny_lora"))),)}
    elif case in ("no_guidance", "lcm"):
        fields = {"guidance_scale": 1.0}
    engine = new_engine()
    plain = engine.generate(make_request(model_path, **fields)).image
    spec = engine_api.ReferenceSpec(picture(0), 0.8, str(tiny_ip_adapter))
    styled = engine.generate(make_request(model_path, reference=spec, **fields))
    assert not np.array_equal(styled.image, plain) and styled.recipe["reference"]["applied"] is True
    np.testing.assert_array_equal(engine.generate(make_request(model_path, **fields)).image, plain)
    if case in ("inpaint", "inpaint_model"):  # the kept pixels stay the input's exactly, reference or not
        kept = mask == 0
        np.testing.assert_array_equal(styled.image[kept, :3], _smooth(1)[kept])


def test_the_depth_model_says_the_reference_does_not_apply(
    new_engine: Any, make_request: Any, engine_api: Any, tiny_depth_model: Path, tiny_ip_adapter: Path,
    control_image: Any,
) -> None:
    engine = new_engine()
    fields = {"control": "DEPTH", "control_image": control_image(0)}
    plain = engine.generate(make_request(tiny_depth_model, **fields)).image
    spec = engine_api.ReferenceSpec(picture(0), 0.8, str(tiny_ip_adapter))
    result = engine.generate(make_request(tiny_depth_model, reference=spec, **fields))
    np.testing.assert_array_equal(result.image, plain)
    assert any("reference image has no effect" in note and "depth-to-image" in note for note in result.ignored)
    assert result.recipe["reference"] == {"model": str(tiny_ip_adapter), "strength": 0.8, "applied": False}
    assert engine.cache.loads["ip_adapter"] == 0


def test_the_x4_upscaler_says_the_reference_does_not_apply(
    new_engine: Any, engine_api: Any, tiny_x4_upscaler: Path, tiny_ip_adapter: Path
) -> None:
    values: dict[str, Any] = {"image": _smooth(2, 40, 72), "model": "", "method": "X4_UPSCALER",
                              "upscaler_model": str(tiny_x4_upscaler), "prompt": "stone", "factor": 4, "steps": 2,
                              "seed": 5, "tile_size": 128, "tile_overlap": 64, "control": "NONE"}
    engine = new_engine()
    plain = engine.upscale(engine_api.UpscaleRequest(**values)).image
    spec = engine_api.ReferenceSpec(picture(0), 0.8, str(tiny_ip_adapter))
    result = engine.upscale(engine_api.UpscaleRequest(**values, reference=spec))
    np.testing.assert_array_equal(result.image, plain)
    (note,) = result.ignored
    assert "reference image does not apply to the x4 upscaler" in note
    assert result.recipe["upscale"]["reference"] == {"model": str(tiny_ip_adapter), "strength": 0.8,
                                                     "applied": False, "not_applied": note}


def test_every_tile_of_an_upscale_follows_the_reference_encoded_once(
    new_engine: Any, engine_api: Any, tiny_sd_model: Path, tiny_ip_adapter: Path
) -> None:
    values: dict[str, Any] = {"image": _smooth(3, 40, 96), "model": str(tiny_sd_model), "prompt": "stone",
                              "factor": 2, "steps": 4, "strength": 0.5, "seed": 3, "tile_size": 128,
                              "tile_overlap": 64, "control": "NONE"}
    engine = new_engine()
    plain = engine.upscale(engine_api.UpscaleRequest(**values))
    spec = engine_api.ReferenceSpec(picture(0), 0.8, str(tiny_ip_adapter))
    with encoder_calls() as calls:
        result = engine.upscale(engine_api.UpscaleRequest(**values, reference=spec))
    assert result.recipe["upscale"]["tiles"] > 1 and len(calls) == 1  # one encoding for all tiles
    assert result.recipe["upscale"]["reference"]["applied"] is True and result.ignored == []
    assert not np.array_equal(result.image, plain.image)
    np.testing.assert_array_equal(engine.upscale(engine_api.UpscaleRequest(**values)).image, plain.image)
    lanczos = engine.upscale(engine_api.UpscaleRequest(**{**values, "strength": 0.0}, reference=spec))
    assert any("no effect at strength 0" in note for note in lanczos.ignored)
    assert lanczos.recipe["upscale"]["reference"]["applied"] is False


def test_every_sync_view_follows_the_reference_encoded_once_and_reused_across_runs(
    new_engine: Any, make_request: Any, engine_api: Any, geometry_api: Any, tiny_sd_model: Path,
    tiny_ip_adapter: Path,
) -> None:
    latent_sync = importlib.import_module(geometry_api.__name__ + ".latent_sync")
    rows, columns = np.mgrid[0:8, 0:8]
    cosine = np.ones((8, 8), np.float32)
    views = [latent_sync.LatentView(texel=rows * 16 + columns + shift, cosine=cosine, size=16) for shift in (0, 4)]
    engine = new_engine()
    request = make_request(tiny_sd_model, scheduler="UNIPC", steps=2)
    _, plain = engine.generate_sync(request, views, fraction=1.0)
    spec = engine_api.ReferenceSpec(picture(0), 0.8, str(tiny_ip_adapter))
    with encoder_calls() as calls:
        result, styled = engine.generate_sync(make_request(tiny_sd_model, scheduler="UNIPC", steps=2, reference=spec),
                                              views, fraction=1.0)
    assert len(calls) == 1 and styled.shape == plain.shape == (2, 64, 64, 3)
    assert all(not np.array_equal(styled[v], plain[v]) for v in range(2))  # every view follows it
    assert result.recipe["reference"]["applied"] is True
    weaker = engine_api.ReferenceSpec(picture(0), 0.3, str(tiny_ip_adapter))
    with encoder_calls() as calls:  # the same picture at another strength: the embedding is reused
        _, other = engine.generate_sync(make_request(tiny_sd_model, scheduler="UNIPC", steps=2, reference=weaker),
                                        views, fraction=1.0)
    assert calls == [] and not np.array_equal(other, styled)
