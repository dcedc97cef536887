"""``Engine.generate_sync`` (SYNC through the engine: load, ControlNet, scheduler, decode, recipe)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest


def _views(geometry_api: Any) -> list[Any]:
    latent_sync = importlib.import_module(geometry_api.__name__ + ".latent_sync")
    rows, columns = np.mgrid[0:8, 0:8]
    first, second = rows * 16 + columns, rows * 16 + columns + 4
    cosine = np.ones((8, 8), np.float32)
    return [latent_sync.LatentView(texel=first, cosine=cosine, size=16),
            latent_sync.LatentView(texel=second, cosine=cosine, size=16)]


def test_generate_sync_runs_every_view_with_its_control_image_and_records_the_sync(
        engine, make_request, tiny_sd_model, tiny_controlnet, geometry_api):
    depth = [np.random.default_rng(i).random((64, 64, 3)).astype(np.float32) for i in range(2)]
    request = make_request(tiny_sd_model, control="DEPTH", control_image=depth[0], control_model=str(tiny_controlnet),
                           scheduler="UNIPC", steps=2)
    result, images = engine.generate_sync(request, _views(geometry_api), fraction=1.0, control_images=depth)
    assert images.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(result.image[..., :3], images[0])
    assert result.recipe["sync"] == {"fraction": 1.0, "weight_exponent": 1.0, "latent_texture_size": 16,
                                     "attention": "NONE"}
    again, images_again = engine.generate_sync(request, _views(geometry_api), fraction=1.0, control_images=depth)
    np.testing.assert_array_equal(images, images_again)  # same seed: bit-identical


def test_generate_sync_with_cross_view_attention_records_it_and_reproduces(engine, make_request, tiny_sd_model,
                                                                         geometry_api, pipeline_of):
    request = make_request(tiny_sd_model, scheduler="DDIM", steps=3)
    plain, plain_images = engine.generate_sync(request, _views(geometry_api), fraction=1.0)
    before = dict(pipeline_of(engine).unet.attn_processors)
    result, images = engine.generate_sync(request, _views(geometry_api), fraction=1.0,
                                          attention="NEIGHBOURS_REFERENCE")
    assert result.recipe["sync"]["attention"] == "NEIGHBOURS_REFERENCE"
    assert not np.array_equal(images, plain_images)
    _, again = engine.generate_sync(request, _views(geometry_api), fraction=1.0, attention="NEIGHBOURS_REFERENCE")
    np.testing.assert_array_equal(images, again)  # same seed: bit-identical
    after = pipeline_of(engine).unet.attn_processors
    assert all(after[name] is before[name] for name in before)


def test_generate_sync_refuses_an_unknown_attention_mode_before_loading(new_engine, make_request, geometry_api,
                                                                       tmp_path):
    with pytest.raises(ValueError, match="sync_attention"):
        new_engine().generate_sync(make_request(tmp_path / "no-such-model"), _views(geometry_api), attention="ALL")


@pytest.mark.parametrize("scheduler", ["PNDM", "EULER_ANCESTRAL", "LCM"])
def test_generate_sync_refuses_a_scheduler_it_cannot_step_before_loading(new_engine, make_request, scheduler,
                                                                         geometry_api, tmp_path):
    eng = new_engine()
    request = make_request(tmp_path / "no-such-model", scheduler=scheduler)
    with pytest.raises(ValueError, match="scheduler"):
        eng.generate_sync(request, _views(geometry_api))


def test_generate_sync_refuses_views_of_another_size(engine, make_request, tiny_sd_model, geometry_api):
    with pytest.raises(ValueError, match="views"):
        engine.generate_sync(make_request(tiny_sd_model, width=128), _views(geometry_api))


def test_generate_sync_runs_an_sdxl_model(engine, make_request, tiny_sdxl_model, geometry_api):
    result, images = engine.generate_sync(make_request(tiny_sdxl_model, scheduler="EULER", steps=2),
                                          _views(geometry_api), fraction=1.0)
    assert images.shape == (2, 64, 64, 3) and result.recipe["sync"]["latent_texture_size"] == 16


def test_cancel_mid_run_with_cross_view_attention_restores_the_processors(engine, make_request, tiny_sd_model,
                                                                          geometry_api, pipeline_of, engine_api):
    request = make_request(tiny_sd_model, scheduler="EULER", steps=3)
    engine.generate_sync(request, _views(geometry_api), fraction=1.0)
    before = dict(pipeline_of(engine).unet.attn_processors)
    steps = []

    def cancel(event: Any) -> None:
        steps.append(event.step)
        raise engine_api.GenerationCancelled()

    with pytest.raises(engine_api.GenerationCancelled):
        engine.generate_sync(request, _views(geometry_api), fraction=1.0, attention="NEIGHBOURS", on_progress=cancel)
    assert steps == [1]
    after = pipeline_of(engine).unet.attn_processors
    assert after.keys() == before.keys() and all(after[name] is before[name] for name in before)
    assert type(pipeline_of(engine).scheduler).__name__ == "EulerDiscreteScheduler"


def test_cross_view_attention_wraps_a_reference_images_adapter_and_leaves_it_in_place(
        engine, make_request, tiny_sd_model, tiny_ip_adapter, geometry_api, pipeline_of, engine_api):
    """SYNC with a reference: the adapter loads before the views' wrappers go on (diffusers rebuilds every processor
    as ``type(p)()`` while loading, which a wrapper cannot survive); afterwards the adapter's processors are the
    very ones it had, the run repeats bit for bit, and the reference still changes the views."""
    picture = np.random.default_rng(5).random((40, 40, 3)).astype(np.float32)
    reference = engine_api.ReferenceSpec(picture, 0.8, str(tiny_ip_adapter))
    request = make_request(tiny_sd_model, scheduler="DDIM", steps=2, reference=reference)
    result, images = engine.generate_sync(request, _views(geometry_api), fraction=1.0, attention="NEIGHBOURS")
    assert result.recipe["reference"]["applied"] is True and result.recipe["sync"]["attention"] == "NEIGHBOURS"
    with_adapter = dict(pipeline_of(engine).unet.attn_processors)
    assert any(type(p).__name__.startswith("IPAdapter") for p in with_adapter.values())
    _, again = engine.generate_sync(request, _views(geometry_api), fraction=1.0, attention="NEIGHBOURS")
    np.testing.assert_array_equal(images, again)
    after = pipeline_of(engine).unet.attn_processors
    assert all(after[name] is with_adapter[name] for name in with_adapter)
    plain = make_request(tiny_sd_model, scheduler="DDIM", steps=2)
    _, without = engine.generate_sync(plain, _views(geometry_api), fraction=1.0, attention="NEIGHBOURS")
    assert not np.array_equal(images, without)
