"""Faults through ``bpy.ops.latent_textures.generate()``: out of memory in the middle of a run (injected from a
forward pre-hook into the real UNet), a model folder gone between runs, a worker thread ended by an unexpected
exception. Each: a clear message, nothing left in ``bpy.data``, the next run as a fresh engine's."""

import shutil

import bpy
import numpy as np
import pytest
import torch

from harness import ADDON_MODULE, datablock_counts
from test_generate import _drive, active_cube, tiny  # noqa: F401 - the fixture is used by name
from test_run_robustness import started_run, wait_for


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


def scene_state() -> dict:
    return dict(datablock_counts(), objects=len(bpy.data.objects), uv_maps=len(bpy.data.objects["Cube"].data.uv_layers))


class unet_fault:  # noqa: N801 - a context manager used like a function
    """Raise ``error()`` at the UNet's ``at``-th call (every UNet the engine runs), while active."""

    def __init__(self, error, at=2):
        self.error, self.at, self.calls = error, at, 0

    def hook(self, unet, args):
        if type(unet).__name__ == "UNet2DConditionModel":
            self.calls += 1
            if self.calls == self.at:
                raise self.error()

    def __enter__(self):
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(self.hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False


def result_pixels():
    return module("bridge.pixels").read_pixels(bpy.context.scene.latent_textures.result_image).copy()


@pytest.mark.parametrize("kind", ["gpu", "cpu"])
def test_out_of_memory_mid_run_leaves_nothing_and_the_next_run_is_a_fresh_engines(tiny, kind):
    active_cube()  # target MATERIAL: a material, a node and an image would be made
    tiny.steps = 3

    def out_of_memory():
        if kind == "gpu":
            return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                            "memory: you tried to allocate 70368744177664 bytes. Error code 12")

    before = scene_state()
    with unet_fault(out_of_memory) as fault, pytest.raises(RuntimeError) as raised:
        bpy.ops.latent_textures.generate()
    assert fault.calls == 2
    message = str(raised.value)
    assert "ran out of memory" in message and "Width/Height" in message and "Views" in message, message
    assert "VAE Tiling" in message and "Generation failed" not in message
    assert scene_state() == before and tiny.result_image is None
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    after = result_pixels()
    assert bpy.ops.latent_textures.free_model() == {"FINISHED"}
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_array_equal(after, result_pixels())


def test_a_model_folder_gone_between_runs_is_a_clear_error_and_leaves_nothing(tiny, tiny_sd_model, tmp_path):
    folder = tmp_path / "my-model"
    shutil.copytree(tiny_sd_model, folder)
    tiny.model = str(folder)
    tiny.target = "IMAGE"
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    first = result_pixels()
    folder.rename(tmp_path / "moved")
    before = scene_state()
    with pytest.raises(RuntimeError, match="There is no model file or folder at") as raised:
        bpy.ops.latent_textures.generate()
    assert str(folder) in str(raised.value)
    assert scene_state() == before
    (tmp_path / "moved").rename(folder)
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    np.testing.assert_array_equal(first, result_pixels())


class Interrupted(BaseException):
    """Not an ``Exception``: what ``SystemExit`` or ``KeyboardInterrupt`` raised inside a library looks like."""


@pytest.mark.parametrize("error", [lambda: ValueError("injected"), lambda: Interrupted("injected")])
def test_a_worker_thread_ended_by_an_unexpected_exception_ends_the_modal_run(tiny, error):
    tiny.target = "IMAGE"
    job_module = module("bridge.job")
    before = scene_state()
    with unet_fault(error, at=1):
        run = started_run()
        ended = []
        run.on_end = lambda: ended.append(True)
        assert _drive(run, bpy.context, timeout=60) == "CANCELLED"
    name = type(error()).__name__
    assert any(level == "ERROR" and f"Generation failed ({name}): injected" in text for level, text in run.reports)
    assert ended == [True] and job_module.current_job() is None
    wait_for(lambda: not job_module.busy_workers())
    assert scene_state() == before
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}  # Generate works again
