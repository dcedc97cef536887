"""SYNC's view groups (engine/view_groups.py): the memory estimate, the groups, the UNet / ControlNet forward run
group by group on the real tiny pipelines (no mocks), its progress, its cancel and its refusal."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIDE = 8  # 64 px views
STEPS = 3
VIEWS = 5


@pytest.fixture(scope="module")
def parts(engine_api: Any, geometry_api: Any) -> tuple[Any, Any, Any, Any]:
    """(engine.view_groups, engine.sync, geometry.latent_sync, engine.schedulers)."""
    return tuple(importlib.import_module(name) for name in (
        engine_api.__name__ + ".view_groups", engine_api.__name__ + ".sync", geometry_api.__name__ + ".latent_sync",
        engine_api.__name__ + ".schedulers"))


@pytest.fixture(scope="module")
def cn_pipe(tiny_sd_model: Path, tiny_controlnet: Path) -> Any:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        str(tiny_sd_model), controlnet=ControlNetModel.from_pretrained(str(tiny_controlnet)),
        safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _strip(latent_sync: Any) -> list[Any]:
    """VIEWS views along a strip of texels, each shifted by 3 columns from the one before (neighbours share)."""
    size = 32
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    return [latent_sync.LatentView(texel=rows * size + columns + 3 * index,
                                   cosine=np.full((SIDE, SIDE), 0.5 + 0.1 * index, np.float32), size=size)
            for index in range(VIEWS)]


def _depth() -> list[np.ndarray]:
    return [np.random.default_rng(i).random((SIDE * 8, SIDE * 8, 3)).astype(np.float32) for i in range(VIEWS)]


def _run(parts: Any, run_sync: Any, pipe: Any, **extra: Any) -> Any:
    import torch

    _, _, latent_sync, schedulers = parts
    pipe.scheduler = schedulers.make_scheduler("DPM_SOLVER_MULTISTEP", pipe.scheduler.config, STEPS)
    return run_sync(pipe, _strip(latent_sync), prompt="a cat", generator=torch.Generator().manual_seed(4),
                    steps=STEPS, guidance_scale=6.0, fraction=1.0, control_images=_depth(), **extra)


def _budget_for(view_groups: Any, pipe: Any, memory: Any, per_group: int) -> str:
    """The LATENT_TEXTURES_MEMORY_BUDGET_MB that makes groups of ``per_group`` views beside the ControlNet's weights
    (the run passes no model weights)."""
    weights = sum(p.numel() * p.element_size() for p in pipe.controlnet.parameters())
    need = VIEWS * memory.resident + per_group * memory.activations + memory.activations // 2
    return repr((need / view_groups.MEMORY_SHARE + weights) / 2**20)


def test_groups_are_as_even_as_they_come(parts):
    view_groups = parts[0]
    assert view_groups.view_groups(6, 6) == [range(0, 6)]
    assert view_groups.view_groups(6, 4) == [range(0, 3), range(3, 6)]
    assert view_groups.view_groups(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert view_groups.view_groups(2, 1) == [range(0, 1), range(1, 2)]
    with pytest.raises(ValueError, match="per_group"):
        view_groups.view_groups(3, 0)


def test_the_down_path_count_is_the_controlnets_residuals_exactly(parts, cn_pipe):
    import torch

    view_groups = parts[0]
    with torch.no_grad():
        down, mid = cn_pipe.controlnet(torch.zeros(1, 4, SIDE, 2 * SIDE), 10, encoder_hidden_states=torch.zeros(
            1, 77, cn_pipe.unet.config.cross_attention_dim), controlnet_cond=torch.zeros(1, 3, 8 * SIDE, 16 * SIDE),
            return_dict=False)
    values = sum(t.numel() for t in down) + mid.numel()
    assert view_groups.down_path_values(cn_pipe.unet.config, SIDE, 2 * SIDE) == values


def test_the_refusal_names_the_most_views_that_fit(parts, engine_api):
    view_groups = parts[0]
    memory = view_groups.ViewMemory(activations=1000, resident=100)
    assert view_groups.views_per_group(6, memory, None) == 6  # memory unknown: one batch
    assert view_groups.views_per_group(6, memory, 6 * 100 + 3 * 1000) == 3
    with pytest.raises(view_groups.ViewsDoNotFitError, match="at most 4 views fit") as refused:
        view_groups.views_per_group(6, memory, 1000 + 4 * 100 + 50)
    assert isinstance(refused.value, engine_api.OutOfMemoryError)  # the engine's memory refusal: reported as one
    # the count it names does fit: one group of one view beside every view's share
    assert view_groups.views_per_group(4, memory, 1000 + 4 * 100 + 50) == 1


def test_a_grouped_forward_is_each_groups_own_forward_put_back_in_batch_order(parts, cn_pipe):
    """The bookkeeping, bit for bit: both CFG halves of a group's views go together, outputs land in their rows."""
    import torch

    view_groups = parts[0]
    unet, groups = cn_pipe.unet, [range(0, 2), range(2, 4), range(4, 5)]
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn((2 * VIEWS, 4, SIDE, SIDE), generator=generator)
    context = torch.randn((2 * VIEWS, 77, unet.config.cross_attention_dim), generator=generator)
    seen: list[tuple[int, int]] = []
    with torch.no_grad(), view_groups.grouped_forward([unet], VIEWS, groups,
                                                      before_group=lambda module, index: seen.append(index)):
        grouped = unet(sample, 10, encoder_hidden_states=context, return_dict=False)[0]
    assert seen == [0, 1, 2] and "forward" not in unet.__dict__
    for group in groups:
        rows = [copy * VIEWS + view for copy in (0, 1) for view in group]
        with torch.no_grad():
            alone = unet(sample[rows], 10, encoder_hidden_states=context[rows], return_dict=False)[0]
        assert torch.equal(grouped[rows], alone)


def test_grouped_views_give_the_one_batch_result_with_progress_per_group(parts, cn_pipe, run_sync, monkeypatch,
                                                                       tiny_sd_model, tiny_controlnet):
    """Grouping changes only how the kernels block the batch (every sample's computation is its own), so the
    grouped run is another fp32 evaluation of the same numbers: the two differ by at most the sum of their fp32
    rounding errors. That error, E, is measured here against the same run in float64; allowing the grouped run's
    error to be up to three times the one-batch run's (another summation order, another maximum), the bound is
    4 E. A mix-up of views or CFG halves would be off by the latents' own size (~10), not ~1e-5."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    view_groups = parts[0]
    whole = _run(parts, run_sync, cn_pipe)
    batch = run_sync.last
    assert batch.groups == [range(VIEWS)]
    budget = _budget_for(view_groups, cn_pipe, batch.memory, 2)
    exact = StableDiffusionControlNetPipeline.from_pretrained(
        str(tiny_sd_model), controlnet=ControlNetModel.from_pretrained(str(tiny_controlnet)),
        safety_checker=None, requires_safety_checker=False).to(dtype=torch.float64)
    exact.set_progress_bar_config(disable=True)
    reference = _run(parts, run_sync, exact).float()
    monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", budget)
    events: list[Any] = []
    grouped = _run(parts, run_sync, cn_pipe, on_progress=events.append)
    assert run_sync.last.groups == [range(0, 2), range(2, 4), range(4, 5)]
    assert [(e.step, e.total, e.part, e.parts) for e in events] == [
        (step, STEPS, group, 3) for step in range(1, STEPS + 1) for group in (1, 2, 3)]
    assert "forward" not in cn_pipe.unet.__dict__ and "forward" not in cn_pipe.controlnet.__dict__  # restored
    rounding = float((whole - reference).abs().max())
    assert 0 < rounding < 1e-3 * float(whole.abs().max())  # fp32 vs fp64: rounding, not a different result
    assert float((grouped - whole).abs().max()) <= 4 * rounding  # measured: 8.3e-6 vs E = 7.2e-6


def test_esc_between_view_groups_stops_within_the_step_and_restores_the_pipeline(parts, cn_pipe, run_sync,
                                                                               monkeypatch, engine_api):
    import threading

    view_groups = parts[0]
    _run(parts, run_sync, cn_pipe)
    monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", _budget_for(view_groups, cn_pipe, run_sync.last.memory, 2))
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []
    unet_calls: list[int] = []
    hook = cn_pipe.unet.register_forward_pre_hook(lambda module, args: unet_calls.append(1))

    def on_progress(event: Any) -> None:
        seen.append((event.step, event.part))
        if (event.step, event.part) == (2, 1):
            cancel.set()  # as Esc does, while step 2's first group runs

    try:
        with pytest.raises(engine_api.GenerationCancelled):
            _run(parts, run_sync, cn_pipe, on_progress=on_progress, cancel_event=cancel)
    finally:
        hook.remove()
    assert seen == [(1, 1), (1, 2), (1, 3), (2, 1)]
    assert len(unet_calls) == 2  # the UNet entered for steps 1 and 2; group 2 of step 2 never began
    assert type(cn_pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert "forward" not in cn_pipe.unet.__dict__ and "forward" not in cn_pipe.controlnet.__dict__


def test_the_engine_refuses_views_that_do_not_fit_before_the_first_step(engine, make_request, tiny_sd_model,
                                                                      parts, monkeypatch, engine_api):
    _, _, latent_sync, _ = parts
    monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", "1")
    steps: list[Any] = []
    with pytest.raises(engine_api.ViewsDoNotFitError, match=r"at most \d+ views fit") as refused:
        engine.generate_sync(make_request(tiny_sd_model, scheduler="DDIM"), _strip(latent_sync),
                             on_progress=steps.append)
    assert "5 views" in str(refused.value) and not [e for e in steps if e.stage == "DENOISE"]


def test_the_estimate_grows_with_the_views_samples_and_score_matrices(parts, cn_pipe):
    """One view's bytes: twice with CFG, the residuals only with a ControlNet, the score matrix only when asked."""
    view_groups = parts[0]
    config = cn_pipe.unet.config
    common = {"height": SIDE, "width": SIDE, "itemsize": 4}
    one = view_groups.estimate(config, samples_per_view=1, controlnet=False, **common)
    two = view_groups.estimate(config, samples_per_view=2, controlnet=False, **common)
    assert two.activations == 2 * one.activations and two.resident == 2 * one.resident
    assert one.activations == view_groups.ACTIVATION_VALUES_PER_C0_PIXEL * config.block_out_channels[0] * SIDE ** 2 * 4
    controlled = view_groups.estimate(config, samples_per_view=1, controlnet=True, **common)
    assert controlled.resident - one.resident == 4 * view_groups.down_path_values(config, SIDE, SIDE)
    scored = view_groups.estimate(config, samples_per_view=1, controlnet=False, score_matrix=True, **common)
    assert scored.activations > one.activations and scored.resident == one.resident
    with pytest.raises(ValueError, match="samples_per_view"):
        view_groups.estimate(config, samples_per_view=0, controlnet=False, **common)


def test_the_memory_budget_variable_overrides_the_machines_memory_and_is_checked(engine_api, monkeypatch):
    import torch

    devices = importlib.import_module(engine_api.__name__ + ".devices")
    cpu = torch.device("cpu")
    monkeypatch.delenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", raising=False)
    assert devices.memory_budget(cpu) == devices.total_memory(cpu)
    monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", "1.5")
    assert devices.memory_budget(cpu) == 3 * 2**19
    for bad in ("lots", "0", "-4"):
        monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", bad)
        with pytest.raises(ValueError, match="LATENT_TEXTURES_MEMORY_BUDGET_MB"):
            devices.memory_budget(cpu)


def test_cross_view_attention_refuses_a_budget_that_would_split_the_views(parts, cn_pipe, run_sync, monkeypatch,
                                                                          engine_api):
    """Cross-view attention reads each view's neighbours in the same UNet call, so where the views would run in
    groups it is refused naming how many views one batch holds, before the first step; without it the same
    budget runs in groups."""
    view_groups = parts[0]
    _run(parts, run_sync, cn_pipe)
    monkeypatch.setenv("LATENT_TEXTURES_MEMORY_BUDGET_MB", _budget_for(view_groups, cn_pipe, run_sync.last.memory, 2))
    events: list[Any] = []
    with pytest.raises(engine_api.ViewsDoNotFitError, match=r"Cross-View Attention runs all 5 views in one batch.*"
                                                            r"at most [0-4] views fit in one batch"):
        _run(parts, run_sync, cn_pipe, attention="NEIGHBOURS", on_progress=events.append)
    assert events == [] and "forward" not in cn_pipe.unet.__dict__
    _run(parts, run_sync, cn_pipe)
    assert len(run_sync.last.groups) == 3
