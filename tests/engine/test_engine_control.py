"""ControlNet conditioning: the control-image conventions (engine.control) and generation through
the real diffusers ControlNet pipelines on tiny SD-1.x / SDXL models and tiny ControlNets."""

from __future__ import annotations

import gc
import importlib
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def control(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".control")


# --- the control-image conventions (numpy only) --------------------------------------------------------


def test_encode_depth_is_normalised_inverse_depth_near_white_background_black(control: Any) -> None:
    depth = np.array([[1.0, 2.0], [4.0, np.inf]])
    image = control.encode_depth(depth)
    assert image.shape == (2, 2, 3) and image.dtype == np.float32
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    far = control.DEPTH_FAR_VALUE
    # inverse depths 1, 0.5, 0.25: nearest -> 1, farthest visible -> DEPTH_FAR_VALUE, linear in 1/z between
    expected = [[1.0, far + (1 - far) * (0.5 - 0.25) / (1 - 0.25)], [far, 0.0]]
    np.testing.assert_allclose(image[..., 0], expected, rtol=1e-6)


def test_encode_depth_visible_mask_and_a_flat_plane(control: Any) -> None:
    depth = np.full((3, 3), 5.0)
    visible = np.zeros((3, 3), bool)
    visible[1, 1] = True
    image = control.encode_depth(depth, visible)
    assert image[1, 1, 0] == 1.0 and image.sum() == 3.0  # one depth: all visible pixels white
    with pytest.raises(ValueError, match="visible"):
        control.encode_depth(depth, visible[:2])


def test_encode_normals_follows_normalbae_left_up_towards_viewer(control: Any) -> None:
    # Blender camera space: x right, y up, z towards the viewer.
    normals = np.array([[[0, 0, 1], [1, 0, 0], [-1, 0, 0]], [[0, 1, 0], [0, 0, 0], [0, 0, 2]]], float)
    image = control.encode_normals(normals)
    assert image.dtype == np.float32 and image.shape == (2, 3, 3)
    np.testing.assert_allclose(image[0, 0], [0.5, 0.5, 1.0])  # facing the camera: (128, 128, 255)
    np.testing.assert_allclose(image[0, 1], [0.0, 0.5, 0.5])  # facing right: no red
    np.testing.assert_allclose(image[0, 2], [1.0, 0.5, 0.5])  # facing left: red
    np.testing.assert_allclose(image[1, 0], [0.5, 1.0, 0.5])  # facing up: green
    np.testing.assert_allclose(image[1, 1], control.BACKGROUND_NORMAL)  # no normal: background
    np.testing.assert_allclose(image[1, 2], [0.5, 0.5, 1.0])  # normalised
    hidden = control.encode_normals(normals, np.zeros((2, 3), bool))
    np.testing.assert_allclose(hidden, np.broadcast_to(control.BACKGROUND_NORMAL, (2, 3, 3)))


def test_defaults_name_real_models_and_the_missing_ones_say_why(control: Any) -> None:
    assert control.default_control_model("SD1", "DEPTH") == "lllyasviel/control_v11f1p_sd15_depth"
    assert control.default_control_model("SD1", "NORMAL") == "lllyasviel/control_v11p_sd15_normalbae"
    assert control.default_control_model("SDXL", "DEPTH") == "diffusers/controlnet-depth-sdxl-1.0"
    assert control.default_control_model("SDXL", "NORMAL") is None
    assert "control_model" in control.no_default_reason("SDXL", "NORMAL")


# --- generation through the ControlNet pipelines --------------------------------------------------------

CONTROL_CLASSES = {
    ("sd", "TXT2IMG"): "StableDiffusionControlNetPipeline",
    ("sd", "IMG2IMG"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd", "INPAINT"): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "TXT2IMG"): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "IMG2IMG"): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "INPAINT"): "StableDiffusionXLControlNetInpaintPipeline",
}


def _ramp(height: int = 64, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.ascontiguousarray(np.stack([x / width, y / height, 0.5 + 0 * x], axis=-1).astype(np.float32))


def _mask(height: int = 64, width: int = 64) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[16:48, 8:40] = 1.0
    return mask


def _mode_fields(mode: str) -> dict[str, Any]:
    if mode == "TXT2IMG":
        return {}
    fields: dict[str, Any] = {"mode": mode, "init_image": _ramp(), "strength": 0.75, "steps": 4}
    if mode == "INPAINT":
        fields["mask_image"] = _mask()
    return fields


@pytest.fixture(params=["sd", "sdxl"])
def family_case(request: pytest.FixtureRequest) -> tuple[str, Path, Path]:
    """(name, model folder, matching ControlNet folder)."""
    if request.param == "sd":
        return "sd", request.getfixturevalue("tiny_sd_model"), request.getfixturevalue("tiny_controlnet")
    return "sdxl", request.getfixturevalue("tiny_sdxl_model"), request.getfixturevalue("tiny_controlnet_sdxl")


@pytest.mark.parametrize("mode", ["TXT2IMG", "IMG2IMG", "INPAINT"])
def test_each_mode_runs_the_controlnet_pipeline_on_the_shared_model(
    engine: Any, make_request: Any, control_image: Any, family_case: tuple[str, Path, Path], mode: str
) -> None:
    name, model, controlnet = family_case
    request = make_request(
        model, control="DEPTH", control_image=control_image(), control_model=str(controlnet), **_mode_fields(mode)
    )
    result = engine.generate(request)
    assert result.image.shape == (64, 64, 4) and np.isfinite(result.image).all()
    base = engine._model.base
    controlled = [p for k, p in engine._model.pipelines.items() if isinstance(k, tuple)]
    pipe = next(p for p in controlled if type(p).__name__ == CONTROL_CLASSES[(name, mode)])
    # from_pipe: the same UNet/VAE/text encoder objects, not copies
    assert pipe.unet is base.unet and pipe.vae is base.vae and pipe.text_encoder is base.text_encoder
    assert result.recipe["control"] == "DEPTH" and result.recipe["control_strength"] == 1.0
    assert result.recipe["control_model"] == str(controlnet)
    # the control image steers the result: without it (same seed) the pixels differ
    plain = engine.generate(make_request(model, **_mode_fields(mode)))
    assert not np.array_equal(plain.image, result.image)
    assert plain.recipe["control"] == "NONE" and plain.recipe["control_model"] == ""


def test_strength_zero_gives_exactly_the_pixels_of_no_control(
    engine: Any, make_request: Any, control_image: Any, family_case: tuple[str, Path, Path]
) -> None:
    _, model, controlnet = family_case
    for mode in ("TXT2IMG", "INPAINT"):
        plain = engine.generate(make_request(model, **_mode_fields(mode))).image
        fields = {"control": "NORMAL", "control_image": control_image(), "control_model": str(controlnet)}
        zero = engine.generate(make_request(model, control_strength=0.0, **fields, **_mode_fields(mode)))
        np.testing.assert_array_equal(zero.image, plain)
        assert zero.recipe["control_strength"] == 0.0 and zero.recipe["control_model"] == str(controlnet)
        full = engine.generate(make_request(model, control_strength=1.0, **fields, **_mode_fields(mode))).image
        assert not np.array_equal(full, plain)


def test_another_control_image_changes_the_pixels_and_the_same_one_repeats_them(
    engine: Any, new_engine: Any, make_request: Any, control_image: Any, tiny_sd_model: Path, tiny_controlnet: Path
) -> None:
    def run(eng: Any, seed: int, strength: float = 1.0) -> np.ndarray:
        request = make_request(
            tiny_sd_model,
            control="DEPTH",
            control_image=control_image(seed),
            control_model=str(tiny_controlnet),
            control_strength=strength,
        )
        return eng.generate(request).image

    first = run(engine, 0)
    assert not np.array_equal(run(engine, 3), first)
    np.testing.assert_array_equal(run(engine, 0), first)
    np.testing.assert_array_equal(run(new_engine(), 0), first)  # a fresh load: bit-identical on the CPU
    assert not np.array_equal(run(engine, 0, strength=0.5), first)


def test_the_controlnet_is_cached_beside_the_model_and_freed_with_it(
    new_engine: Any, make_request: Any, control_image: Any, tiny_sd_model: Path, tiny_controlnet: Path
) -> None:
    engine = new_engine()
    fields = {"control": "DEPTH", "control_image": control_image(), "control_model": str(tiny_controlnet)}
    engine.generate(make_request(tiny_sd_model, **fields))
    (key, controlnet), = engine.cache.entries("controlnet").items()
    dtype = str(engine.dtype).removeprefix("torch.")  # Precision AUTO: bf16 on CPUs with native bf16
    assert key[1] == str(tiny_controlnet.resolve()) and key[2:] == ("cpu", dtype)
    engine.generate(make_request(tiny_sd_model, mode="IMG2IMG", init_image=_ramp(), strength=0.5, **fields))
    assert list(engine.cache.entries("controlnet").values()) == [controlnet] and engine.load_count == 1
    pipe = engine._model.pipelines[("TXT2IMG", key)]
    assert pipe.controlnet is controlnet
    alive = weakref.ref(controlnet)
    del controlnet, pipe
    engine.free()
    gc.collect()
    assert engine.loaded_model() is None and alive() is None  # freed with the model


def test_single_file_controlnet_gives_the_folder_s_pixels(
    new_engine: Any,
    make_request: Any,
    control_image: Any,
    tiny_models: Any,
    tiny_sd_model: Path,
    tiny_controlnet: Path,
    tiny_controlnet_file: Path,
    tmp_path: Path,
) -> None:
    sd15_controlnet_config_repo = "lllyasviel/control_v11p_sd15_canny"  # what diffusers infers for an SD-1.x file
    tiny_models.install_in_hf_cache(tiny_controlnet, tmp_path, sd15_controlnet_config_repo)
    engine = new_engine(cache_dir=str(tmp_path), offline=True)
    fields = {"control": "DEPTH", "control_image": control_image()}
    from_file = engine.generate(make_request(tiny_sd_model, control_model=str(tiny_controlnet_file), **fields))
    from_folder = engine.generate(make_request(tiny_sd_model, control_model=str(tiny_controlnet), **fields))
    np.testing.assert_array_equal(from_file.image, from_folder.image)
    assert from_file.recipe["control_model"] == str(tiny_controlnet_file)


def test_the_default_controlnet_comes_from_the_cache_offline(
    new_engine: Any, make_request: Any, control_image: Any, tiny_models: Any, tiny_sd_model: Path,
    tiny_controlnet: Path, tmp_path: Path, engine_api: Any,
) -> None:
    engine = new_engine(cache_dir=str(tmp_path), offline=True)
    request = make_request(tiny_sd_model, control="NORMAL", control_image=control_image())
    with pytest.raises(engine_api.ModelNotFoundError, match="lllyasviel/control_v11p_sd15_normalbae"):
        engine.generate(request)
    tiny_models.install_in_hf_cache(tiny_controlnet, tmp_path, "lllyasviel/control_v11p_sd15_normalbae")
    result = engine.generate(request)
    assert result.recipe["control_model"] == "lllyasviel/control_v11p_sd15_normalbae"
    explicit = engine.generate(make_request(tiny_sd_model, control="NORMAL", control_image=control_image(),
                                            control_model=str(tiny_controlnet)))
    np.testing.assert_array_equal(result.image, explicit.image)


def test_controlnet_download_reports_progress(
    new_engine: Any, make_request: Any, control_image: Any, tiny_controlnet: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, tiny_sd_model: Path,
) -> None:
    import huggingface_hub
    from test_engine_sources import FakeHub

    hub = FakeHub(tiny_controlnet, "tiny-org/tiny-cn", extra=["diffusion_pytorch_model.bin", "README.md"])
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", hub.model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    events: list[Any] = []
    engine = new_engine(cache_dir=str(tmp_path))
    request = make_request(tiny_sd_model, control="DEPTH", control_image=control_image(), control_model="tiny-org/tiny-cn")
    engine.generate(request, on_progress=events.append)
    download = [e for e in events if e.stage == "DOWNLOAD"]
    assert download and download[-1].step == download[-1].total == sum(hub.files[f] for f in hub.requested)
    assert sorted(hub.requested) == ["config.json", "diffusion_pytorch_model.safetensors"]


# --- bad ControlNets: clear errors naming the field ------------------------------------------------------


def test_sdxl_normal_has_no_default_and_says_to_set_control_model(
    engine: Any, make_request: Any, control_image: Any, tiny_sdxl_model: Path
) -> None:
    with pytest.raises(ValueError, match="control_model") as raised:
        engine.generate(make_request(tiny_sdxl_model, control="NORMAL", control_image=control_image()))
    assert "SDXL" in str(raised.value)


def test_a_controlnet_of_another_family_is_refused_naming_both(
    engine: Any, make_request: Any, control_image: Any, engine_api: Any,
    tiny_sdxl_model: Path, tiny_sd_model: Path, tiny_controlnet: Path, tiny_controlnet_sdxl: Path,
) -> None:
    for model, controlnet, own, other in (
        (tiny_sdxl_model, tiny_controlnet, "SD1", "SDXL"),
        (tiny_sd_model, tiny_controlnet_sdxl, "SDXL", "SD1"),
    ):
        request = make_request(model, control="DEPTH", control_image=control_image(), control_model=str(controlnet))
        with pytest.raises(engine_api.EngineError) as raised:
            engine.generate(request)
        message = str(raised.value)
        assert f"made for {own}" in message and f"model is {other}" in message and "control_model" in message


def test_missing_and_pickled_controlnets_are_refused(
    engine: Any, make_request: Any, control_image: Any, engine_api: Any, tiny_sd_model: Path,
    tiny_controlnet: Path, tmp_path: Path,
) -> None:
    def run(control_model: str) -> None:
        engine.generate(
            make_request(tiny_sd_model, control="DEPTH", control_image=control_image(), control_model=control_model)
        )

    with pytest.raises(engine_api.ModelNotFoundError, match="no-such-controlnet"):
        run(str(tmp_path / "no-such-controlnet.safetensors"))
    pickled = tmp_path / "cn.pth"
    pickled.write_bytes(b"not loaded")
    with pytest.raises(engine_api.UnsafeModelFormatError, match="pickle"):
        run(str(pickled))
    folder = tmp_path / "pickled-cn"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_controlnet / "config.json").read_text())
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(engine_api.UnsafeModelFormatError, match="pickle"):
        run(str(folder))
    not_a_cn = tmp_path / "empty"
    not_a_cn.mkdir()
    with pytest.raises(engine_api.ModelNotFoundError, match="control_model"):
        run(str(not_a_cn))


# --- SD 2 depth models: the depth image is the model's own input --------------------------------------


def test_an_sd2_depth_model_paints_from_the_depth_image(
    engine: Any, make_request: Any, control_image: Any, tiny_depth_model: Path
) -> None:
    def run(seed: int, **fields: Any) -> Any:
        request = make_request(
            tiny_depth_model, control="DEPTH", control_image=control_image(seed, 64, 96), width=96, **fields
        )
        return engine.generate(request)

    first = run(0)
    assert first.image.shape == (64, 96, 4) and first.image[..., :3].std() > 0.01
    family = engine._model.family
    assert family.depth and family.name == "SD2" and type(engine._model.base).__name__ == "StableDiffusionDepth2ImgPipeline"
    assert first.recipe["control"] == "DEPTH" and first.recipe["control_model"] == ""
    assert not np.array_equal(run(3).image, first.image)  # another depth image, same seed: other pixels
    np.testing.assert_array_equal(run(0).image, first.image)
    init = np.ascontiguousarray(_ramp(64, 96))
    img2img = run(0, mode="IMG2IMG", init_image=init, strength=0.5, steps=4)
    other = run(0, mode="IMG2IMG", init_image=np.ascontiguousarray(init[::-1]), strength=0.5, steps=4)
    assert not np.array_equal(img2img.image, other.image)


def test_an_sd2_depth_model_without_depth_or_for_inpainting_is_refused(
    engine: Any, make_request: Any, control_image: Any, tiny_depth_model: Path
) -> None:
    with pytest.raises(ValueError, match="control must be DEPTH"):
        engine.generate(make_request(tiny_depth_model))
    with pytest.raises(ValueError, match="control must be DEPTH"):
        engine.generate(make_request(tiny_depth_model, control="NORMAL", control_image=control_image()))
    with pytest.raises(ValueError, match="mode INPAINT"):
        engine.generate(
            make_request(
                tiny_depth_model, mode="INPAINT", init_image=_ramp(), mask_image=_mask(), control="DEPTH",
                control_image=control_image(),
            )
        )
    flat = np.full((64, 64, 3), 0.7, np.float32)
    with pytest.raises(ValueError, match="control_image"):
        engine.generate(make_request(tiny_depth_model, control="DEPTH", control_image=flat))


def test_half_precision_model_keeps_its_dtype_through_every_pipeline(
    new_engine: Any, make_request: Any, control_image: Any, tiny_sd_model: Path, tiny_controlnet: Path
) -> None:
    """diffusers' from_pipe casts shared components to float32 unless told the dtype: a ControlNet or
    img2img pipeline must not turn the bf16 model into fp32 (the next plain run would then fail)."""
    engine = new_engine(precision="BF16")
    engine.generate(make_request(tiny_sd_model))
    engine.generate(make_request(tiny_sd_model, control="DEPTH", control_image=control_image(),
                                 control_model=str(tiny_controlnet)))
    init = np.full((64, 64, 3), 0.5, dtype=np.float32)
    engine.generate(make_request(tiny_sd_model, mode="IMG2IMG", init_image=init, strength=0.7))
    import torch

    base = engine._model.pipelines["TXT2IMG"]
    assert {p.dtype for p in base.unet.parameters()} == {torch.bfloat16}
    engine.generate(make_request(tiny_sd_model))  # failed with "mat1 and mat2 must have the same dtype"
