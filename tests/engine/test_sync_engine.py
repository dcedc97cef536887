"""SYNC's synchronised loop (engine/sync.py) on the real tiny diffusers pipelines: no mocks."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIDE = 8  # 64 px views
STEPS = 3


@pytest.fixture(scope="module")
def parts(engine_api: Any, geometry_api: Any) -> tuple[Any, Any, Any]:
    """(engine.sync, geometry.latent_sync, engine.schedulers)."""
    return tuple(importlib.import_module(name) for name in (
        engine_api.__name__ + ".sync", geometry_api.__name__ + ".latent_sync", engine_api.__name__ + ".schedulers"))


sync = pytest.fixture(scope="module", name="sync")(lambda parts: parts[0])
latent_sync = pytest.fixture(scope="module", name="latent_sync")(lambda parts: parts[1])
schedulers = pytest.fixture(scope="module", name="schedulers")(lambda parts: parts[2])


@pytest.fixture(scope="module")
def sd_pipe(tiny_sd_model: Path) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_model), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _set_scheduler(pipe: Any, schedulers: Any, name: str) -> None:
    pipe.scheduler = schedulers.make_scheduler(name, pipe.scheduler.config, STEPS)


def _one_to_one(latent_sync: Any) -> Any:
    """One view that sees the whole latent texture 1:1 (a plane, ortho camera, UVs = the view)."""
    texel = np.arange(SIDE * SIDE, dtype=np.int64).reshape(SIDE, SIDE)
    return latent_sync.LatentView(texel=texel, cosine=np.ones((SIDE, SIDE), np.float32), size=SIDE)


def _two_sharing(latent_sync: Any) -> list[Any]:
    """View 0 sees texels of a 16x8 strip's left part, view 1 the same strip shifted by 4 columns (half shared);
    a background corner in view 1; different angle weights."""
    size = 16
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    first = rows * size + columns
    second = rows * size + columns + 4
    second[:2, :2] = -1
    cos_a = np.full((SIDE, SIDE), 0.9, np.float32)
    cos_b = np.where(second >= 0, 0.4, 0.0).astype(np.float32)
    return [latent_sync.LatentView(texel=first, cosine=cos_a, size=size),
            latent_sync.LatentView(texel=second, cosine=cos_b, size=size)]


def _generator(seed: int = 5) -> Any:
    import torch

    return torch.Generator("cpu").manual_seed(seed)


@pytest.mark.parametrize("name", ["DDIM", "EULER", "DPM_SOLVER_MULTISTEP", "DPM_SOLVER_MULTISTEP_KARRAS", "UNIPC"])
def test_one_view_seeing_the_whole_latent_texture_equals_a_plain_generation_from_the_same_noise(
        sd_pipe, sync, latent_sync, schedulers, name, run_sync):
    plan = sync.make_plan([_one_to_one(latent_sync)])
    _set_scheduler(sd_pipe, schedulers, name)
    synced = run_sync(sd_pipe, [_one_to_one(latent_sync)], prompt="a red brick wall", generator=_generator(),
                      steps=STEPS, guidance_scale=7.0, fraction=1.0)
    noise = sync.consistent_noise(plan, 4, _generator())
    _set_scheduler(sd_pipe, schedulers, name)
    plain = sd_pipe(prompt=["a red brick wall"], num_inference_steps=STEPS, guidance_scale=7.0, latents=noise,
                    output_type="latent", height=SIDE * 8, width=SIDE * 8).images
    assert synced.shape == plain.shape == (1, 4, SIDE, SIDE)
    # the only difference: x0 -> eps -> x0 round trips in fp32 (the scheduler's own rounding)
    np.testing.assert_allclose(synced.numpy(), plain.numpy(), rtol=0, atol=2e-5 * float(plain.abs().max()))


@pytest.mark.parametrize("name", ["DDIM", "EULER", "DPM_SOLVER_MULTISTEP", "DPM_SOLVER_MULTISTEP_KARRAS", "UNIPC"])
def test_two_views_agree_exactly_where_they_share_texels_and_each_step_carries_the_synchronised_x0(
        sd_pipe, sync, latent_sync, schedulers, name, run_sync):
    import torch

    views = _two_sharing(latent_sync)
    pairs = [(r, c, r, c - 4) for r in range(SIDE) for c in range(4, SIDE) if views[1].texel[r, c - 4] >= 0]
    seen: list[int] = []

    def observe(index: int, synced: Any, reported: Any) -> None:
        seen.append(index)
        for r0, c0, r1, c1 in pairs:
            assert torch.equal(synced[0, :, r0, c0], synced[1, :, r1, c1])
        # not shared: view 0's left columns keep their own x0, so the views still differ somewhere
        scale = float(synced.abs().max())
        torch.testing.assert_close(reported.float(), synced, rtol=0, atol=1e-5 * scale + 1e-6)

    _set_scheduler(sd_pipe, schedulers, name)
    final = run_sync(sd_pipe, views, prompt="a cat", generator=_generator(), steps=STEPS, guidance_scale=5.0,
                     fraction=1.0, weight_exponent=2.0, observer=observe)
    assert seen == list(range(STEPS))
    assert final.shape == (2, 4, SIDE, SIDE)
    assert sd_pipe.scheduler.__class__.__name__ != "SynchronisedScheduler"  # the real one is back


def test_the_blend_is_the_weighted_mean_and_keeps_unweighted_pixels(sync, latent_sync):
    import torch

    views = _two_sharing(latent_sync)
    plan = sync.make_plan(views, weight_exponent=2.0)
    x0 = torch.randn((2, 4, SIDE, SIDE), generator=_generator(1))
    synced = sync.synchronise(x0, plan)
    wa, wb = 0.9 ** 2, 0.4 ** 2
    expected = (wa * x0[0, :, 3, 6] + wb * x0[1, :, 3, 2]) / (wa + wb)
    torch.testing.assert_close(synced[0, :, 3, 6], expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(synced[0, :, :, :4], x0[0, :, :, :4])  # only view 0 sees these texels
    assert torch.equal(synced[1, :, :2, :2], x0[1, :, :2, :2])  # background keeps its own


@pytest.mark.parametrize("name", ["DDIM", "EULER"])
def test_the_synchronised_step_matches_its_closed_form(sync, latent_sync, schedulers, sd_pipe, name):
    """DDIM (eta 0): x' = a' x0^ + sqrt(1 - a'^2) eps^; Euler: x' = x0^ + (sigma'/sigma)(x - x0^)."""
    import torch

    plan = sync.make_plan(_two_sharing(latent_sync))
    scheduler = schedulers.make_scheduler(name, sd_pipe.scheduler.config, STEPS)
    scheduler = type(scheduler).from_config(scheduler.config, clip_sample=False)  # real SD's configs: no clipping
    scheduler.set_timesteps(STEPS)
    records: list[Any] = []
    stand_in = sync.SynchronisedScheduler(scheduler, plan, STEPS, lambda i, s, r: records.append(s))
    sample = torch.randn((2, 4, SIDE, SIDE), generator=_generator(2)) * scheduler.init_noise_sigma
    for index, t in enumerate(scheduler.timesteps):
        eps = torch.randn((2, 4, SIDE, SIDE), generator=_generator(10 + index))
        out = stand_in.step(eps, t, sample).prev_sample
        x0 = records[-1]
        if name == "DDIM":
            previous = int(t) - scheduler.config.num_train_timesteps // STEPS
            a = float(scheduler.alphas_cumprod[int(t)]) ** 0.5
            a_next = float(scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.final_alpha_cumprod)
            eps_hat = (sample - a * x0) / (1 - a * a) ** 0.5
            expected = a_next ** 0.5 * x0 + (1 - a_next) ** 0.5 * eps_hat
        else:
            sigma, sigma_next = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
            expected = x0 + (sigma_next / sigma) * (sample - x0)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        sample = out


@pytest.mark.parametrize("name", ["DDIM", "EULER", "DPM_SOLVER_MULTISTEP", "DPM_SOLVER_MULTISTEP_KARRAS", "UNIPC"])
def test_a_denoiser_that_knows_the_texture_converges_to_it_through_the_synchronised_loop(
        sync, latent_sync, schedulers, sd_pipe, name):
    """A fake denoiser (not a model) predicts x0 = texture + a per-view bias of opposite signs and equal weight:
    only the synchronised loop can land both views on the texture itself."""
    import torch

    views = _two_sharing(latent_sync)
    for view in views:  # equal weights: the biases cancel in the blend
        object.__setattr__(view, "cosine", np.where(view.texel >= 0, 1.0, 0.0).astype(np.float32))
    plan = sync.make_plan(views)
    # inside DDIM's clip range (the tiny model's config clips x0 to [-1, 1]) even with the biases
    texture = (0.3 * torch.randn((4, plan.texels), generator=_generator(3))).clamp(-0.45, 0.45)
    shared = torch.zeros((2, SIDE, SIDE), dtype=torch.bool)
    for index, view in enumerate(views):
        other = views[1 - index].texel
        shared[index] = torch.from_numpy(np.isin(view.texel, other[other >= 0]) & (view.texel >= 0))
    target = torch.stack([texture[:, plan.texel[i].clamp_min(0)].reshape(4, SIDE, SIDE) for i in range(2)])
    bias = torch.tensor([0.5, -0.5]).reshape(2, 1, 1, 1)
    scheduler = schedulers.make_scheduler(name, sd_pipe.scheduler.config, 12)
    scheduler.set_timesteps(12)
    stand_in = sync.SynchronisedScheduler(scheduler, plan, 12)
    sample = sync.consistent_noise(plan, 4, _generator(4)) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x_vp = scheduler.scale_model_input(sample, t)  # Euler: x / sqrt(sigma^2 + 1); the others: x
        a = float(stand_in._alpha_sigma(t)[0])
        eps = (x_vp - a * (target + bias)) / (1 - a * a) ** 0.5
        sample = stand_in.step(eps, t, sample).prev_sample
    error = (sample - target).abs()
    mask = shared.unsqueeze(1).expand_as(error)
    # DDIM ends at alphas_cumprod[0] (set_alpha_to_one off): a little noise is left, 0.029 eps
    assert float(error[mask].mean()) < (0.05 if name == "DDIM" else 0.01)
    # without synchronisation the biases stay
    assert float((error[~mask]).mean()) > 0.3


@pytest.mark.parametrize("name", ["PNDM", "EULER_ANCESTRAL", "LCM", "NOPE"])
def test_schedulers_sync_cannot_step_are_refused_by_name(sync, name):
    with pytest.raises(ValueError, match="scheduler"):
        sync.check_scheduler(name)


def test_the_pipeline_scheduler_is_refused_before_anything_runs(sync, latent_sync, schedulers, sd_pipe, run_sync):
    _set_scheduler(sd_pipe, schedulers, "PNDM")
    with pytest.raises(ValueError, match="scheduler"):
        run_sync(sd_pipe, [_one_to_one(latent_sync)], prompt="x", generator=_generator(), steps=STEPS,
                 guidance_scale=5.0)
    assert type(sd_pipe.scheduler).__name__ == "PNDMScheduler"


def test_the_sync_window_is_the_first_rounded_fraction_of_the_steps(sync):
    assert sync.synchronised_steps(30, 0.8) == 24
    assert sync.synchronised_steps(3, 0.5) == 2  # halves up
    assert sync.synchronised_steps(4, 0.0) == 0
    assert sync.synchronised_steps(4, 1.0) == 4
    with pytest.raises(ValueError, match="sync_fraction"):
        sync.synchronised_steps(4, 1.5)


def test_same_seed_gives_bit_identical_views_and_the_tail_runs_unsynchronised(sd_pipe, sync, latent_sync,
                                                                            schedulers, run_sync):
    import torch

    runs, synced_steps = [], []
    for _ in range(2):
        _set_scheduler(sd_pipe, schedulers, "DPM_SOLVER_MULTISTEP")
        steps: list[int] = []
        runs.append(run_sync(sd_pipe, _two_sharing(latent_sync), prompt="a cat", generator=_generator(9), steps=4,
                             guidance_scale=5.0, fraction=0.5, observer=lambda i, s, r: steps.append(i)))
        synced_steps.append(steps)
    assert torch.equal(runs[0], runs[1])
    assert synced_steps == [[0, 1], [0, 1]]


def test_views_agree_with_a_controlnet_pipeline(tiny_sd_model, tiny_controlnet, sync, latent_sync, schedulers,
                                                run_sync):
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        str(tiny_sd_model), controlnet=ControlNetModel.from_pretrained(str(tiny_controlnet)),
        safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    _set_scheduler(pipe, schedulers, "UNIPC")
    views = _two_sharing(latent_sync)
    depth = [np.random.default_rng(i).random((SIDE * 8, SIDE * 8, 3)).astype(np.float32) for i in range(2)]
    agreed: list[bool] = []

    def observe(index: int, synced: Any, reported: Any) -> None:
        agreed.append(all(torch.equal(synced[0, :, r, c], synced[1, :, r, c - 4])
                          for r in range(SIDE) for c in range(4, SIDE) if views[1].texel[r, c - 4] >= 0))

    final = run_sync(pipe, views, prompt="a cat", generator=_generator(), steps=STEPS, guidance_scale=5.0,
                     fraction=1.0, observer=observe, control_images=depth)
    assert agreed == [True] * STEPS
    assert final.shape == (2, 4, SIDE, SIDE)


@pytest.mark.parametrize("kind,name", [("sd2v", "DDIM"), ("sd2v", "EULER"), ("sd2v", "DPM_SOLVER_MULTISTEP_KARRAS"),
                                       ("sdxl", "EULER"), ("sdxl", "UNIPC")])
def test_v_prediction_and_sdxl_one_view_equals_the_plain_generation(request, sync, latent_sync, schedulers, kind,
                                                                    name, run_sync):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if kind == "sd2v":
        pipe = StableDiffusionPipeline.from_pretrained(str(request.getfixturevalue("tiny_sd2_v_model")),
                                                       safety_checker=None, requires_safety_checker=False)
    else:
        pipe = StableDiffusionXLPipeline.from_pretrained(str(request.getfixturevalue("tiny_sdxl_model")))
    pipe.set_progress_bar_config(disable=True)
    plan = sync.make_plan([_one_to_one(latent_sync)])
    _set_scheduler(pipe, schedulers, name)
    synced = run_sync(pipe, [_one_to_one(latent_sync)], prompt="a chair", generator=_generator(), steps=STEPS,
                      guidance_scale=6.0, fraction=1.0)
    _set_scheduler(pipe, schedulers, name)
    plain = pipe(prompt=["a chair"], num_inference_steps=STEPS, guidance_scale=6.0,
                 latents=sync.consistent_noise(plan, 4, _generator()), output_type="latent",
                 height=SIDE * 8, width=SIDE * 8).images
    np.testing.assert_allclose(synced.numpy(), plain.numpy(), rtol=0, atol=2e-5 * float(plain.abs().max()))


@pytest.mark.parametrize("name", ["DDIM", "EULER", "DPM_SOLVER_MULTISTEP", "UNIPC"])
def test_final_latents_agree_at_shared_pixels_only_when_synchronised(sd_pipe, sync, latent_sync, schedulers, name,
                                                                     run_sync):
    """Same consistent noise, same views: unsynchronised views drift apart where they share the surface
    (measured mean |difference| of the final latents 0.32 DDIM, 0.85 Euler, 1.08 DPM++, 1.06 UniPC);
    synchronised to the end, pixels reading one texel start from one noise and every deterministic step maps
    (x_t, synced x0) to the same x_t', so they agree exactly - DDIM's last step included."""
    views = _two_sharing(latent_sync)
    rows = [r for r in range(SIDE) if views[1].texel[r, 0] >= 0]
    disagreement = {}
    for fraction in (0.0, 1.0):
        _set_scheduler(sd_pipe, schedulers, name)
        final = run_sync(sd_pipe, views, prompt="a cat", generator=_generator(), steps=STEPS, guidance_scale=5.0,
                         fraction=fraction)
        first, second = final[0][:, rows, 4:], final[1][:, rows, :4]
        disagreement[fraction] = float((first - second).abs().mean())
    assert disagreement[0.0] > 0.05
    assert disagreement[1.0] == 0.0


def test_a_gathering_bake_decides_the_texels_it_saw_and_the_splat_the_rest(sync, latent_sync):
    import torch

    views = _two_sharing(latent_sync)
    calls = []

    def bake(latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(latents.shape)
        colour = np.full((16 * 16, 4), 7.0, np.float32)
        weight = np.zeros(16 * 16, np.float32)
        weight[:16 * 4] = 1.0  # the bake saw the first four rows of texels only
        return colour, weight

    plan = sync.make_plan(views, bake=bake)
    x0 = torch.randn((2, 4, SIDE, SIDE), generator=_generator(1))
    synced = sync.synchronise(x0, plan)
    assert calls == [(2, SIDE, SIDE, 4)]
    assert bool((synced[0, :, :4] == 7.0).all()) and bool((synced[1, :, 2:4] == 7.0).all())
    splat = sync.synchronise(x0, sync.make_plan(views))
    assert torch.equal(synced[:, :, 4:], splat[:, :, 4:])
