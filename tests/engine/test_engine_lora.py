"""LoRAs through diffusers' load_lora_weights/set_adapters on the tiny models: on/off exactly,
weights, several at once, family check, pickles, hub cache, LCM-LoRA-style use with the LCM scheduler."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture
def lora(engine_api: Any) -> Any:
    return engine_api.LoraSpec


def test_lora_on_changes_pixels_and_off_restores_them_exactly(
    new_engine: Any, make_request: Any, lora: Any, tiny_sd_model: Path, tiny_lora: Path
) -> None:
    engine = new_engine()
    base = engine.generate(make_request(tiny_sd_model)).image
    styled = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),)))
    assert not np.array_equal(styled.image, base)
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, base)  # off: exactly the base
    again = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),))).image
    np.testing.assert_array_equal(again, styled.image)  # on again (cached adapter): the same pixels
    assert engine.load_count == 1
    assert styled.recipe["loras"] == [
        {"name": tiny_lora.name, "weight": 1.0, "sha256": hashlib.sha256(tiny_lora.read_bytes()).hexdigest()}
    ]
    assert engine.generate(make_request(tiny_sd_model)).recipe["loras"] == []


def test_the_weight_scales_the_lora_and_zero_is_the_base(
    engine: Any, make_request: Any, lora: Any, tiny_sd_model: Path, tiny_lora: Path
) -> None:
    base = engine.generate(make_request(tiny_sd_model)).image
    full = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora), 1.0),))).image
    half = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora), 0.5),))).image
    negative = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora), -1.0),))).image
    assert len({full.tobytes(), half.tobytes(), negative.tobytes(), base.tobytes()}) == 4
    zero = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora), 0.0),))).image
    np.testing.assert_allclose(zero, base, atol=1e-6)  # weight 0: no LoRA term (peft still runs its layers)


def test_two_loras_at_once_and_switching_between_them(
    new_engine: Any, make_request: Any, lora: Any, tiny_models: Any, tiny_sd_model: Path, tiny_lora: Path,
    tmp_path: Path,
) -> None:
    second = tiny_models.build_tiny_lora(tmp_path / "second", tiny_sd_model, seed=5)
    engine = new_engine()
    one = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),))).image
    two = engine.generate(make_request(tiny_sd_model, loras=(lora(str(second)),))).image
    both = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)), lora(str(second), 0.7))))
    assert len({one.tobytes(), two.tobytes(), both.image.tobytes()}) == 3
    assert [e["weight"] for e in both.recipe["loras"]] == [1.0, 0.7]
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),))).image, one)
    assert engine.load_count == 1 and len(engine._model.lora_adapters) == 2


def test_sdxl_lora_works_and_a_lora_of_another_family_is_refused_naming_both(
    engine: Any, make_request: Any, lora: Any, engine_api: Any, tiny_sdxl_model: Path, tiny_sd_model: Path,
    tiny_lora: Path, tiny_lora_sdxl: Path,
) -> None:
    base = engine.generate(make_request(tiny_sdxl_model)).image
    styled = engine.generate(make_request(tiny_sdxl_model, loras=(lora(str(tiny_lora_sdxl)),))).image
    assert not np.array_equal(base, styled)
    with pytest.raises(engine_api.EngineError) as raised:
        engine.generate(make_request(tiny_sdxl_model, loras=(lora(str(tiny_lora_sdxl)), lora(str(tiny_lora)))))
    message = str(raised.value)
    assert "loras[1]" in message and "32 wide" in message and "model is SDXL (64 wide)" in message
    with pytest.raises(engine_api.EngineError, match=r"loras\[0\].*model is SD1"):
        engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora_sdxl)),)))
    # the refused request left the model as it was: the base pixels
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sdxl_model)).image, base)


def test_a_refused_lora_list_leaves_no_lora_active(
    new_engine: Any, make_request: Any, lora: Any, engine_api: Any, tiny_sd_model: Path, tiny_lora: Path,
    tiny_lora_sdxl: Path,
) -> None:
    engine = new_engine()
    base = engine.generate(make_request(tiny_sd_model)).image
    # the first LoRA loads (diffusers activates it), the second is refused: the next plain run is the base
    with pytest.raises(engine_api.EngineError, match=r"loras\[1\]"):
        engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)), lora(str(tiny_lora_sdxl)))))
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, base)


def test_a_lora_file_written_again_at_the_same_path_gives_its_new_pixels(
    new_engine: Any, make_request: Any, lora: Any, tiny_models: Any, tiny_sd_model: Path, tiny_lora: Path,
    tmp_path: Path,
) -> None:
    """Trainers overwrite ``last.safetensors``: the adapter is cached per contents, not per path. The new file
    keeps the size (same shapes) and even gets its old modification time back: written again, it is read again."""
    path = tmp_path / "last.safetensors"
    shutil.copyfile(tiny_lora, path)
    engine = new_engine()
    old = engine.generate(make_request(tiny_sd_model, loras=(lora(str(path)),))).image
    newer = tiny_models.build_tiny_lora(tmp_path / "epoch-2", tiny_sd_model, seed=5)
    before = path.stat()
    shutil.copyfile(newer, path)  # in place: the same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    result = engine.generate(make_request(tiny_sd_model, loras=(lora(str(path)),)))
    np.testing.assert_array_equal(
        result.image, new_engine().generate(make_request(tiny_sd_model, loras=(lora(str(path)),))).image
    )
    assert not np.array_equal(result.image, old)
    assert result.recipe["loras"][0]["sha256"] == hashlib.sha256(newer.read_bytes()).hexdigest()
    assert [a for a, _ in engine._model.lora_adapters.values()] == ["lora_2"]  # the old contents' adapter is gone
    assert engine.load_count == 1


def test_loras_under_compile_and_plain_runs_after_them_are_the_plain_picture(
    monkeypatch: pytest.MonkeyPatch, new_engine: Any, make_request: Any, lora: Any, tiny_sd_model: Path,
    tiny_lora: Path, pipeline_of: Any,
) -> None:
    """Compile the Model + a LoRA: the adapters go onto the UNet inside the compiled wrapper (diffusers' adapter
    calls skip the wrapper), and a plain run after a LoRA run is the plain picture, bit for bit, compiled or not.
    The eager backend runs dynamo's graph capture and guards (what makes a new adapter set compile again) in
    seconds, on the same torch ops as eager: exact. Inductor costs one compile per adapter set (tiny model, 64 px:
    one graph each, see ``lora_adapters``)."""
    import torch

    plain = make_request(tiny_sd_model, steps=2)
    styled = make_request(tiny_sd_model, steps=2, loras=(lora(str(tiny_lora)),))
    eager = new_engine(precision="FP32")
    eager_plain = eager.generate(plain).image
    eager_lora = eager.generate(styled).image
    np.testing.assert_array_equal(eager.generate(plain).image, eager_plain)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    try:
        compiled = new_engine(precision="FP32", torch_compile=True)
        first = compiled.generate(plain).image
        result = compiled.generate(styled)
        assert hasattr(pipeline_of(compiled).unet, "_orig_mod")  # still the compiled wrapper
        assert [e["name"] for e in result.recipe["loras"]] == [tiny_lora.name]
        np.testing.assert_array_equal(result.image, eager_lora)
        after = compiled.generate(plain)
        assert after.recipe["loras"] == []
        np.testing.assert_array_equal(after.image, first)
        np.testing.assert_array_equal(compiled.generate(styled).image, eager_lora)  # the cached adapter again
        np.testing.assert_array_equal(first, eager_plain)
    finally:
        torch._dynamo.reset()


def test_the_family_names_of_real_widths(engine_api: Any) -> None:
    import importlib

    loras = importlib.import_module(engine_api.__name__ + ".loras")
    assert [loras.family_of_width(w) for w in (768, 1024, 2048)] == ["SD1", "SD2", "SDXL"]


def test_pickled_loras_need_allow_pickle(
    new_engine: Any, make_request: Any, lora: Any, engine_api: Any, tiny_sd_model: Path, tiny_lora: Path,
    tmp_path: Path,
) -> None:
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "style.bin"
    torch.save(load_file(str(tiny_lora)), str(pickled))
    with pytest.raises(engine_api.UnsafeModelFormatError, match="pickle"):
        new_engine().generate(make_request(tiny_sd_model, loras=(lora(str(pickled)),)))
    trusting = new_engine(allow_pickle=True)
    from_pickle = trusting.generate(make_request(tiny_sd_model, loras=(lora(str(pickled)),))).image
    from_safetensors = new_engine().generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),))).image
    np.testing.assert_array_equal(from_pickle, from_safetensors)


def test_a_hub_lora_comes_from_the_cache_offline_and_a_missing_one_is_named(
    new_engine: Any, make_request: Any, lora: Any, engine_api: Any, tiny_models: Any, tiny_sd_model: Path,
    tiny_lora: Path, tmp_path: Path,
) -> None:
    engine = new_engine(cache_dir=str(tmp_path / "cache"), offline=True)
    with pytest.raises(engine_api.ModelNotFoundError, match="tiny-org/style-lora"):
        engine.generate(make_request(tiny_sd_model, loras=(lora("tiny-org/style-lora"),)))
    tiny_models.install_in_hf_cache(tiny_lora.parent, tmp_path / "cache", "tiny-org/style-lora")
    result = engine.generate(make_request(tiny_sd_model, loras=(lora("tiny-org/style-lora", 0.8),)))
    assert result.recipe["loras"] == [
        {"name": "tiny-org/style-lora", "weight": 0.8, "repo_id": "tiny-org/style-lora", "file": tiny_lora.name}
    ]
    with pytest.raises(engine_api.ModelNotFoundError, match="no-such.safetensors"):
        engine.generate(make_request(tiny_sd_model, loras=(lora(str(tmp_path / "no-such.safetensors")),)))
    folder = tmp_path / "lora-folder"
    shutil.copytree(tiny_lora.parent, folder)
    by_folder = engine.generate(make_request(tiny_sd_model, loras=(lora(str(folder), 0.8),))).image
    np.testing.assert_array_equal(by_folder, result.image)


def test_lcm_lora_style_use_with_the_lcm_scheduler_and_low_guidance(
    engine: Any, make_request: Any, lora: Any, tiny_sd_model: Path, tiny_lora: Path
) -> None:
    fields = {"scheduler": "LCM", "steps": 4, "guidance_scale": 1.5}
    plain = engine.generate(make_request(tiny_sd_model, **fields))
    lcm = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),), **fields))
    assert type(engine._model.base.scheduler).__name__ == "LCMScheduler"
    assert np.isfinite(lcm.image).all() and lcm.image[..., :3].std() > 0.01
    assert not np.array_equal(lcm.image, plain.image)
    assert lcm.recipe["scheduler"] == "LCM" and lcm.recipe["guidance_scale"] == 1.5


def test_lora_with_a_controlnet_and_inpainting(
    engine: Any, make_request: Any, lora: Any, control_image: Any, tiny_sd_model: Path, tiny_lora: Path,
    tiny_controlnet: Path,
) -> None:
    init = np.full((64, 64, 3), 0.4, np.float32)
    mask = np.zeros((64, 64), np.float32)
    mask[8:40, 8:40] = 1
    fields = {
        "mode": "INPAINT", "init_image": init, "mask_image": mask, "strength": 1.0, "steps": 2,
        "control": "DEPTH", "control_image": control_image(), "control_model": str(tiny_controlnet),
    }
    plain = engine.generate(make_request(tiny_sd_model, **fields)).image
    styled = engine.generate(make_request(tiny_sd_model, loras=(lora(str(tiny_lora)),), **fields)).image
    assert not np.array_equal(plain, styled)
    np.testing.assert_array_equal(styled[..., :3][mask == 0], init[mask == 0])
