"""Faults the GPU path will meet, rehearsed on the CPU through the engine's public API: running out of memory
in the middle of a run (injected from a UNet forward pre-hook into the real pipeline: the GPU's
``torch.OutOfMemoryError``, and a real failed CPU allocation), and a model folder that disappears between
runs. Each ends with a message that says what to change, frees what the run held, and leaves the model usable:
the next run's pixels are a fresh engine's."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _out_of_memory(kind: str) -> None:
    import torch

    if kind == "gpu":
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total)")
    torch.empty(2**62, dtype=torch.uint8)  # more than any address space: the CPU allocator's own failure
    raise AssertionError("the allocation did not fail")


@pytest.mark.parametrize("kind", ["gpu", "cpu"])
def test_running_out_of_memory_mid_run_says_what_to_change_and_the_model_stays_usable(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any, kind: str
) -> None:
    import torch

    engine = new_engine(precision="FP32")
    request = make_request(tiny_sd_model, steps=3, mode="IMG2IMG", strength=1.0,
                           init_image=np.full((64, 64, 3), 0.5, dtype=np.float32))
    engine.generate(request)
    held: list[Any] = []
    calls = []

    def fail_at_the_second_step(module: Any, args: Any) -> None:
        calls.append(1)
        held.append(weakref.ref(args[0]))  # the run's latents: held by the pipeline's frames
        if len(calls) == 2:
            _out_of_memory(kind)

    handle = pipeline_of(engine, "IMG2IMG").unet.register_forward_pre_hook(fail_at_the_second_step)
    try:
        with pytest.raises(engine_api.OutOfMemoryError) as raised:
            engine.generate(request)
    finally:
        handle.remove()
    message = str(raised.value)
    assert message.startswith("The CPU ran out of memory (")
    for what in ("Width/Height", "Views", "VAE Tiling", "Attention Slicing", "CPU Offload"):
        assert what in message, (what, message)
    expected = torch.OutOfMemoryError if kind == "gpu" else RuntimeError
    assert isinstance(raised.value.__cause__, expected)
    if kind == "cpu":
        assert "can't allocate memory" in message or "not enough memory" in message
    gc.collect()
    assert len(calls) == 2 and all(ref() is None for ref in held)  # freed while the error is still held
    after = engine.generate(request)
    fresh = new_engine(precision="FP32").generate(request)
    np.testing.assert_array_equal(after.image, fresh.image)
    assert engine.load_count == 1  # the model stayed loaded


def test_a_model_folder_that_disappears_between_runs_is_a_clear_error(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models" / "my-model"
    shutil.copytree(tiny_sd_model, folder)
    engine = new_engine(precision="FP32")
    first = engine.generate(make_request(folder, steps=2))
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    with pytest.raises(engine_api.ModelNotFoundError, match="There is no model file or folder at") as raised:
        engine.generate(make_request(folder, steps=2))
    assert str(folder) in str(raised.value)
    moved.rename(folder)  # back again: the same pixels
    np.testing.assert_array_equal(engine.generate(make_request(folder, steps=2)).image, first.image)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()  # a part gone: named
    fresh = new_engine(precision="FP32")
    with pytest.raises(engine_api.ModelNotFoundError, match="no PyTorch weights for its unet"):
        fresh.generate(make_request(folder, steps=2))
    assert fresh.loaded_model() is None
