"""Cross-view attention for SYNC (engine/sync_attention.py) on the real tiny diffusers UNet and pipelines."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIDE = 8  # 64 px views
STEPS = 3


@pytest.fixture(scope="module")
def parts(engine_api: Any, geometry_api: Any) -> tuple[Any, ...]:
    """(engine.sync_attention, engine.sync, geometry.latent_sync, engine.schedulers)."""
    return tuple(importlib.import_module(name) for name in (
        engine_api.__name__ + ".sync_attention", engine_api.__name__ + ".sync",
        geometry_api.__name__ + ".latent_sync", engine_api.__name__ + ".schedulers"))


@pytest.fixture(scope="module")
def sd_pipe(tiny_sd_model: Path) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_model), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _strip_texels(views: int) -> np.ndarray:
    """(views, SIDE * SIDE): view i reads columns 4i .. 4i + 7 of a strip: it shares half its texels with views
    i - 1 and i + 1, none with the others."""
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    width = 4 * views + 4
    return np.stack([(rows * width + columns + 4 * index).reshape(-1) for index in range(views)])


def _latent_views(latent_sync: Any, texel: np.ndarray) -> list[Any]:
    size = int(np.ceil(np.sqrt(texel.max() + 1)))
    return [latent_sync.LatentView(texel=t.reshape(SIDE, SIDE), cosine=np.ones((SIDE, SIDE), np.float32), size=size)
            for t in texel]


def _self_attention(unet: Any) -> Any:
    return next(module for name, module in unet.named_modules() if name.endswith("attn1"))


def _generator(seed: int = 5) -> Any:
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def _run(parts: Any, pipe: Any, texel: np.ndarray, attention: str, steps: int = STEPS, guidance: float = 7.0,
         **call_arguments: Any) -> Any:
    attn_module, sync, latent_sync, schedulers = parts
    pipe.scheduler = schedulers.make_scheduler("DPM_SOLVER_MULTISTEP", pipe.scheduler.config, steps)
    latents, _ = sync.run_views(pipe, _latent_views(latent_sync, texel), prompt="a cat", generator=_generator(),
                                steps=steps, guidance_scale=guidance, fraction=1.0, attention=attention,
                                call_arguments=call_arguments)
    return latents


def test_neighbours_are_the_views_sharing_the_most_texels_then_the_nearest_in_order(parts):
    sync_attention = parts[0]
    # view i shares with i +- 1 only; ties (view 0: views 2 and 3 share nothing) go to the nearer in cyclic order
    np.testing.assert_array_equal(sync_attention.neighbour_views(_strip_texels(4)),
                                  [[0, 1, 3], [1, 0, 2], [2, 1, 3], [3, 2, 0]])
    texel = _strip_texels(4)
    texel[3] = texel[0]  # view 4 sees exactly what view 1 sees: view 1's first neighbour
    texel[3, :5] = -1  # background pixels share nothing
    assert sync_attention.neighbour_views(texel)[0].tolist() == [0, 3, 1]
    np.testing.assert_array_equal(sync_attention.neighbour_views(_strip_texels(1)), [[0]])
    np.testing.assert_array_equal(sync_attention.neighbour_views(_strip_texels(2)), [[0, 1], [1, 0]])
    assert sync_attention.reference_steps(30) == 6 and sync_attention.reference_steps(3) == 1
    with pytest.raises(ValueError, match="sync_attention"):
        sync_attention.check_mode("ALL")


def _layer_inputs(unet: Any, views: int, *, identical: bool, dtype: Any = None) -> tuple[Any, Any]:
    """(attn1 of the first transformer block, [uncond views, cond views] hidden states (2V, 16, C))."""
    import torch

    attn = _self_attention(unet)
    channels = attn.to_q.in_features
    generator = torch.Generator().manual_seed(11)
    if identical:
        halves = torch.randn((2, 1, 16, channels), generator=generator).expand(2, views, 16, channels)
    else:
        halves = torch.randn((2, views, 16, channels), generator=generator)
    hidden = halves.reshape(2 * views, 16, channels).contiguous()
    return attn, hidden if dtype is None else hidden.to(dtype)


def test_a_view_sees_only_its_own_half_of_the_guidance_batch_and_only_its_neighbours(parts, sd_pipe):
    """Exact: changing what a view must not see leaves its output bit for bit; changing a neighbour does not."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    sync_attention = parts[0]
    attn, hidden = _layer_inputs(sd_pipe.unet, 4, identical=False)
    views = sync_attention.CrossViews(sync_attention.neighbour_views(_strip_texels(4)), "NEIGHBOURS", 0, lambda: 0)
    processor = sync_attention.CrossViewProcessor(AttnProcessor2_0(), views)
    with torch.no_grad():
        base = processor(attn, hidden)
        other_half = hidden.clone()
        other_half[:4] += 1.0  # the whole unconditional half
        moved = processor(attn, other_half)
        assert torch.equal(moved[4:], base[4:]) and not torch.equal(moved[:4], base[:4])
        far = hidden.clone()
        far[[2, 6]] += 1.0  # view 3 in both halves: not a neighbour of view 1
        moved = processor(attn, far)
        assert torch.equal(moved[[0, 4]], base[[0, 4]])
        near = hidden.clone()
        near[[1, 5]] += 1.0  # view 2: view 1's neighbour
        moved = processor(attn, near)
        assert not torch.equal(moved[0], base[0]) and not torch.equal(moved[4], base[4])
        assert not torch.equal(base, AttnProcessor2_0()(attn, hidden))  # it attends across views at all
        with pytest.raises(ValueError, match="sync_attention"):
            processor(attn, hidden[:6])  # not whole views: neighbours would be missing
        grouped = sync_attention.CrossViewProcessor(AttnProcessor2_0(), sync_attention.CrossViews(
            sync_attention.neighbour_views(_strip_texels(2)), "NEIGHBOURS", 0, lambda: 0, blocks=lambda: 2))
        with pytest.raises(ValueError, match="every view in one UNet call"):
            grouped(attn, hidden[:2])  # views 1-2 of 4 under guidance as one group: looks like 2 views unguided
        assert torch.equal(grouped(attn, hidden[:4]), sync_attention.CrossViewProcessor(
            AttnProcessor2_0(), sync_attention.CrossViews(sync_attention.neighbour_views(_strip_texels(2)),
                                                          "NEIGHBOURS", 0, lambda: 0))(attn, hidden[:4]))


def test_the_reference_view_is_attended_only_in_the_early_steps(parts, sd_pipe):
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    sync_attention = parts[0]
    attn, hidden = _layer_inputs(sd_pipe.unet, 4, identical=False)
    step = [0]
    neighbours = sync_attention.neighbour_views(_strip_texels(4))  # view 3's: 3, 2, 4 (not view 1)
    views = sync_attention.CrossViews(neighbours, "NEIGHBOURS_REFERENCE", 2, lambda: step[0])
    processor = sync_attention.CrossViewProcessor(AttnProcessor2_0(), views)
    plain = sync_attention.CrossViewProcessor(AttnProcessor2_0(), sync_attention.CrossViews(
        neighbours, "NEIGHBOURS", 2, lambda: step[0]))
    moved_reference = hidden.clone()
    moved_reference[[0, 4]] += 1.0
    with torch.no_grad():
        early, early_moved = processor(attn, hidden), processor(attn, moved_reference)
        assert not torch.equal(early[2], early_moved[2])
        # (Attn(neighbours) + Attn(view 1)) / 2, each half its own view 1
        reference_only = AttnProcessor2_0()(attn, hidden, hidden[[0, 0, 0, 0, 4, 4, 4, 4]])
        torch.testing.assert_close(early, (plain(attn, hidden) + reference_only) / 2)
        step[0] = 2
        late, late_moved = processor(attn, hidden), processor(attn, moved_reference)
        assert torch.equal(late[2], late_moved[2]) and torch.equal(late[6], late_moved[6])
        assert torch.equal(late, plain(attn, hidden))


@pytest.mark.parametrize("mode", ["NEIGHBOURS", "NEIGHBOURS_REFERENCE"])
def test_identical_views_attend_as_one_view_within_the_rounding(parts, sd_pipe, mode):
    """Identical views duplicate every key: each softmax weight splits evenly over the copies, the output is
    mathematically the view's own self-attention. In float64 (unit roundoff u = 2**-53) a sum of K terms is off
    by at most K u of its absolute sum (first order), the softmax's normaliser and weighted sum each once on each
    side; the output projection scales by its row sums; the scores (dot products over d) by d u |q| |k|. Mixing
    the guidance halves (which differ) would move the output by O(1)."""
    import copy

    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    sync_attention = parts[0]
    attn, hidden = _layer_inputs(sd_pipe.unet, 3, identical=True, dtype=torch.float64)
    attn = copy.deepcopy(attn).double()
    views = sync_attention.CrossViews(sync_attention.neighbour_views(_strip_texels(3)), mode, 1, lambda: 0)
    with torch.no_grad():
        on = sync_attention.CrossViewProcessor(AttnProcessor2_0(), views)(attn, hidden)
        off = AttnProcessor2_0()(attn, hidden)
        query, key, value = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
    keys, head = 3 * hidden.shape[1], query.shape[-1] // attn.heads
    u = 2.0 ** -53
    rows = float(attn.to_out[0].weight.detach().abs().sum(dim=1).max())
    scores = head * u * float(attn.scale) * float(query.abs().max()) * float(key.abs().max())
    bound = rows * float(value.abs().max()) * (8 * keys * u + 4 * scores)
    assert float((on - off).abs().max()) <= bound
    assert float((off[:3] - off[3:]).abs().max()) > 1e6 * bound  # the halves differ: mixing them would show


def test_one_view_with_cross_view_attention_equals_it_without_bit_for_bit(parts, sd_pipe):
    """One view has no neighbours and is its own reference: (a + a) / 2 == a exactly; any mixing of the guidance
    halves (prompt and negative differ) would change the latents."""
    import torch

    texel = _strip_texels(1)
    off = _run(parts, sd_pipe, texel, "NONE")
    assert torch.equal(_run(parts, sd_pipe, texel, "NEIGHBOURS_REFERENCE"), off)
    assert torch.equal(_run(parts, sd_pipe, texel, "NEIGHBOURS"), off)


def test_cross_view_attention_changes_the_views_reproduces_and_restores_the_same_processors(parts, sd_pipe):
    import torch

    before = dict(sd_pipe.unet.attn_processors)
    texel = _strip_texels(3)
    off = _run(parts, sd_pipe, texel, "NONE")
    on = _run(parts, sd_pipe, texel, "NEIGHBOURS_REFERENCE")
    assert not torch.equal(on, off)
    assert torch.equal(_run(parts, sd_pipe, texel, "NEIGHBOURS_REFERENCE"), on)  # same seed: bit-identical
    after = sd_pipe.unet.attn_processors
    assert after.keys() == before.keys() and all(after[name] is before[name] for name in before)
    assert type(sd_pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"


def test_without_guidance_the_batch_is_the_views_alone(parts, sd_pipe):
    import torch

    texel = _strip_texels(3)
    off = _run(parts, sd_pipe, texel, "NONE", guidance=1.0)
    assert not torch.equal(_run(parts, sd_pipe, texel, "NEIGHBOURS_REFERENCE", guidance=1.0), off)
    one = _strip_texels(1)
    assert torch.equal(_run(parts, sd_pipe, one, "NEIGHBOURS_REFERENCE", guidance=1.0),
                       _run(parts, sd_pipe, one, "NONE", guidance=1.0))


def test_processors_are_restored_after_an_error_mid_run(parts, sd_pipe):
    before = dict(sd_pipe.unet.attn_processors)
    calls = []

    def fail(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        calls.append(step)
        wrapped = [p for n, p in pipe.unet.attn_processors.items() if n.endswith("attn1.processor")]
        assert all(type(p).__name__ == "CrossViewProcessor" for p in wrapped)
        raise RuntimeError("stopped mid-run")

    with pytest.raises(RuntimeError, match="stopped mid-run"):
        _run(parts, sd_pipe, _strip_texels(2), "NEIGHBOURS", callback_on_step_end=fail)
    assert calls == [0]
    after = sd_pipe.unet.attn_processors
    assert after.keys() == before.keys() and all(after[name] is before[name] for name in before)
    assert type(sd_pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"


def test_it_wraps_the_sliced_attention_of_the_slicing_preference(parts, sd_pipe):
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0, SlicedAttnProcessor

    texel = _strip_texels(2)
    sd_pipe.enable_attention_slicing()
    try:
        before = dict(sd_pipe.unet.attn_processors)
        assert all(isinstance(p, SlicedAttnProcessor) for p in before.values())
        sliced = _run(parts, sd_pipe, texel, "NEIGHBOURS")
        after = sd_pipe.unet.attn_processors
        assert all(after[name] is before[name] for name in before)
        assert not torch.equal(sliced, _run(parts, sd_pipe, texel, "NONE"))  # it looked across views through it
    finally:
        sd_pipe.unet.set_attn_processor(AttnProcessor2_0())


def test_the_attention_recorder_records_around_cross_view_attention(parts, sd_pipe, engine_api):
    """Record Attention's processors sit on attn2, cross-view attention's on attn1: both run, each restored."""
    recorder_module = importlib.import_module(engine_api.__name__ + ".attention")
    before = dict(sd_pipe.unet.attn_processors)
    recorders = {}
    for mode in ("NONE", "NEIGHBOURS_REFERENCE"):
        recorder = recorders[mode] = recorder_module.CrossAttentionRecorder(SIDE, SIDE)
        with recorder.attached(sd_pipe.unet):
            recorded = dict(sd_pipe.unet.attn_processors)
            _run(parts, sd_pipe, _strip_texels(2), mode)
            assert all(sd_pipe.unet.attn_processors[name] is recorded[name] for name in recorded)
    assert recorders["NONE"].counts and recorders["NEIGHBOURS_REFERENCE"].counts == recorders["NONE"].counts
    maps = recorders["NEIGHBOURS_REFERENCE"].token_maps([[1]], 64, 64)
    assert maps.shape == (1, 64, 64) and np.isfinite(maps).all() and maps.max() > 0
    assert not np.array_equal(maps, recorders["NONE"].token_maps([[1]], 64, 64))  # it saw the attending views
    after = sd_pipe.unet.attn_processors
    assert all(after[name] is before[name] for name in before)


def test_module_processors_on_cross_attention_stay_in_place_and_registered(parts, sd_pipe):
    """IP-Adapter processors are nn.Modules on attn2: they are passed through and stay the UNet's submodules."""
    from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0

    sync_attention = parts[0]
    unet = sd_pipe.unet
    modules = {}
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            modules[f"{name}.processor"] = IPAdapterAttnProcessor2_0(
                module.to_q.out_features, module.to_k.in_features, num_tokens=(4,), scale=0.5)
    unet.set_attn_processor({name: modules.get(name, processor) for name, processor in unet.attn_processors.items()})
    try:
        before = dict(unet.attn_processors)
        views = sync_attention.CrossViews(np.array([[0]]), "NEIGHBOURS", 0, lambda: 0)
        with sync_attention.cross_view_attention(unet, views):
            inside = unet.attn_processors
            assert all(inside[name] is modules[name] for name in modules)
            assert all(type(inside[name]).__name__ == "CrossViewProcessor" for name in inside if name not in modules)
        after = unet.attn_processors
        assert all(after[name] is before[name] for name in before)
        registered = {id(module) for module in unet.modules()}
        assert all(id(module) in registered for module in modules.values())
    finally:
        unet.set_attn_processor(AttnProcessor2_0())


def test_sdxl_one_view_equals_it_without_and_two_views_attend(parts, tiny_sdxl_model):
    import torch
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_model))
    pipe.set_progress_bar_config(disable=True)
    one = _strip_texels(1)
    assert torch.equal(_run(parts, pipe, one, "NEIGHBOURS_REFERENCE"), _run(parts, pipe, one, "NONE"))
    two = _strip_texels(2)
    assert not torch.equal(_run(parts, pipe, two, "NEIGHBOURS_REFERENCE"), _run(parts, pipe, two, "NONE"))
