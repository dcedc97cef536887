"""Generation end to end on tiny SD-1.x / SD-2.x-v / SDXL models loaded through the real loaders."""

from __future__ import annotations

import gc
import importlib
import json
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SCHEDULER_CLASSES = {
    "DPM_SOLVER_MULTISTEP": "DPMSolverMultistepScheduler",
    "DPM_SOLVER_MULTISTEP_KARRAS": "DPMSolverMultistepScheduler",
    "DDIM": "DDIMScheduler",
    "EULER": "EulerDiscreteScheduler",
    "EULER_ANCESTRAL": "EulerAncestralDiscreteScheduler",
    "PNDM": "PNDMScheduler",
    "LCM": "LCMScheduler",
    "UNIPC": "UniPCMultistepScheduler",
}


def _init_image(height: int = 64, width: int = 64, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth colour ramp with a little noise: something an img2img run can visibly keep."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0.0 * x], axis=-1)
    rgb += np.random.default_rng(seed).normal(0, 0.02, rgb.shape).astype(np.float32)
    image = np.clip(rgb, 0, 1).astype(np.float32)
    if channels == 4:
        image = np.concatenate([image, np.ones((height, width, 1), np.float32)], axis=-1)
    return image


def _assert_image(image: np.ndarray, height: int, width: int) -> None:
    assert image.shape == (height, width, 4)
    assert image.dtype == np.float32 and image.flags.c_contiguous
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert (image[..., 3] == 1.0).all()
    assert image[..., :3].std() > 0.01  # not a blank image


@pytest.fixture(params=["sd", "sdxl"])
def tiny_model(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue({"sd": "tiny_sd_model", "sdxl": "tiny_sdxl_model"}[request.param])


# --- shapes, modes, determinism ----------------------------------------------------------------------


def test_txt2img_shape_dtype_range(engine: Any, make_request: Any, tiny_model: Path) -> None:
    result = engine.generate(make_request(tiny_model, width=96, height=64))
    _assert_image(result.image, 64, 96)
    assert result.seed == 7


def test_img2img_shape_and_it_uses_the_init_image(engine: Any, make_request: Any, tiny_model: Path) -> None:
    def run(init: np.ndarray) -> np.ndarray:
        request = make_request(tiny_model, mode="IMG2IMG", init_image=init, width=96, height=64, strength=0.5, steps=4)
        return engine.generate(request).image

    ramp = run(_init_image(64, 96))
    _assert_image(ramp, 64, 96)
    flipped = run(np.ascontiguousarray(_init_image(64, 96)[::-1]))
    assert not np.array_equal(ramp, flipped)
    # Alpha of an RGBA init image is ignored.
    np.testing.assert_array_equal(run(_init_image(64, 96, channels=4)), ramp)


def test_same_request_and_seed_is_bit_identical(
    engine: Any, new_engine: Any, make_request: Any, tiny_model: Path
) -> None:
    request = make_request(tiny_model, seed=1234)
    first = engine.generate(request).image
    np.testing.assert_array_equal(engine.generate(request).image, first)
    np.testing.assert_array_equal(new_engine().generate(request).image, first)  # a fresh load, too
    assert not np.array_equal(engine.generate(make_request(tiny_model, seed=1235)).image, first)


def test_random_seed_is_returned_and_reproduces(
    engine_api: Any, engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    first = engine.generate(make_request(tiny_sd_model, seed=None))
    assert 0 <= first.seed <= engine_api.MAX_SEED and first.recipe["seed"] == first.seed
    again = engine.generate(make_request(tiny_sd_model, seed=first.seed))
    np.testing.assert_array_equal(again.image, first.image)


def test_output_matches_plain_diffusers_within_tolerance(
    new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any
) -> None:
    """channels_last on CPU (a speed-up) may change float rounding, not the picture; no flips either.

    FP32 explicitly: diffusers' pipeline runs in fp32 (AUTO is bf16 on CPUs with native bf16)."""
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    engine = new_engine(precision="FP32")
    result = engine.generate(make_request(tiny_sd_model, steps=4, width=96, height=64))
    weight = pipeline_of(engine).unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_model, local_files_only=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)
    raw = pipe(
        "red brick wall",
        num_inference_steps=4,
        guidance_scale=7.5,
        height=64,
        width=96,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
    ).images[0]
    np.testing.assert_allclose(result.image[..., :3], raw, atol=2e-3)
    assert np.abs(result.image[..., :3] - raw).mean() < 1e-4


def test_sdxl_matches_plain_diffusers_and_keeps_its_zero_negative_embedding(
    new_engine: Any, make_request: Any, tiny_sdxl_model: Path
) -> None:
    """An empty negative prompt reaches SDXL as None, so force_zeros_for_empty_prompt applies as trained."""
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionXLPipeline

    result = new_engine(precision="FP32").generate(make_request(tiny_sdxl_model, steps=3, negative_prompt=""))
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_model, local_files_only=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)

    def raw(**extra: Any) -> np.ndarray:
        return pipe(
            "red brick wall",
            num_inference_steps=3,
            guidance_scale=7.5,  # SDXL's own default is 5
            height=64,
            width=64,
            generator=torch.Generator("cpu").manual_seed(7),
            output_type="np",
            **extra,
        ).images[0]

    np.testing.assert_allclose(result.image[..., :3], raw(), atol=2e-3)
    assert np.abs(result.image[..., :3] - raw(negative_prompt="")).max() > 1e-3  # "" would differ


def test_recipe_is_complete_and_json_safe(engine_api: Any, engine: Any, make_request: Any, tiny_sd_model: Path) -> None:
    request = make_request(tiny_sd_model, negative_prompt="blurry", guidance_scale=5, scheduler="EULER", seamless="X")
    recipe = engine.generate(request).recipe
    assert json.loads(json.dumps(recipe)) == recipe
    for name in (
        "prompt",
        "negative_prompt",
        "model",
        "mode",
        "seed",
        "steps",
        "scheduler",
        "strength",
        "width",
        "height",
        "seamless",
    ):
        assert recipe[name] == getattr(request, name), name
    assert recipe["guidance_scale"] == 5.0 and isinstance(recipe["guidance_scale"], float)
    assert recipe["version"] == engine_api.__version__
    assert (recipe["family"], recipe["device"]) == ("SD1", "cpu")
    assert recipe["dtype"] == engine.loaded_model().dtype == str(engine.dtype).removeprefix("torch.")


@pytest.mark.parametrize(("precision", "dtype"), [("FP32", "float32"), ("BF16", "bfloat16")])
def test_recipe_records_the_dtype(
    new_engine: Any, make_request: Any, tiny_sd_model: Path, precision: str, dtype: str
) -> None:
    """Pixels repeat bit for bit only at the same dtype: the recipe says which one made them."""
    assert new_engine(precision=precision).generate(make_request(tiny_sd_model, steps=1)).recipe["dtype"] == dtype


def test_recipe_records_what_else_decides_the_pixels_on_a_cpu(
    engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    """Float sums split over a different thread count, or run with other kernels, round differently."""
    import torch

    recipe = engine.generate(make_request(tiny_sd_model, steps=1)).recipe
    assert recipe["threads"] == torch.get_num_threads() >= 1
    assert recipe["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and recipe["torch"] == torch.__version__


# --- schedulers and families -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEDULER_CLASSES))
def test_every_scheduler_runs_from_the_models_own_config(
    engine: Any, make_request: Any, tiny_sd2_v_model: Path, pipeline_of: Any, name: str
) -> None:
    result = engine.generate(make_request(tiny_sd2_v_model, scheduler=name, steps=3))
    _assert_image(result.image, 64, 64)
    scheduler = pipeline_of(engine).scheduler
    assert type(scheduler).__name__ == SCHEDULER_CLASSES[name]
    # From the model's config: its v-prediction and beta schedule survive every scheduler switch.
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.beta_end == 0.012
    if name.startswith("DPM_SOLVER"):
        assert scheduler.config.use_karras_sigmas == name.endswith("KARRAS")
        assert scheduler.config.algorithm_type == "dpmsolver++"


def test_lcm_step_limit_is_a_clear_error(engine: Any, make_request: Any, tiny_sd_model: Path) -> None:
    with pytest.raises(ValueError, match="steps must be at most 50 with the LCM scheduler"):
        engine.generate(make_request(tiny_sd_model, scheduler="LCM", steps=51))
    _assert_image(engine.generate(make_request(tiny_sd_model, scheduler="LCM", steps=50)).image, 64, 64)


@pytest.mark.parametrize("name", ["EULER_ANCESTRAL", "LCM", "DPM_SOLVER_MULTISTEP_KARRAS"])
def test_sdxl_runs_other_schedulers(engine: Any, make_request: Any, tiny_sdxl_model: Path, name: str) -> None:
    _assert_image(engine.generate(make_request(tiny_sdxl_model, scheduler=name)).image, 64, 64)


def test_family_is_read_from_the_model(
    engine: Any, make_request: Any, tiny_sd_model: Path, tiny_sd2_v_model: Path, tiny_sdxl_model: Path
) -> None:
    seen = {}
    for model in (tiny_sd_model, tiny_sd2_v_model, tiny_sdxl_model):
        recipe = engine.generate(make_request(model, steps=1)).recipe
        seen[model.name] = (engine.loaded_model().family, recipe["prediction_type"], recipe["few_step"])
    assert seen == {
        "tiny-sd": ("SD1", "epsilon", False),
        "tiny-sd2-v": ("SD2", "v_prediction", False),
        "tiny-sdxl": ("SDXL", "epsilon", False),
    }


@pytest.mark.parametrize(
    ("unet", "scheduler", "expected"),
    [
        ({"cross_attention_dim": 768}, {"_class_name": "PNDMScheduler"}, ("SD1", "epsilon", False)),
        (
            {"cross_attention_dim": 1024, "use_linear_projection": True},
            {"prediction_type": "v_prediction"},
            ("SD2", "v_prediction", False),
        ),
        (
            {"cross_attention_dim": 2048, "addition_embed_type": "text_time"},
            {"timestep_spacing": "leading"},
            ("SDXL", "epsilon", False),
        ),
        (
            {"cross_attention_dim": 2048, "addition_embed_type": "text_time"},
            {"timestep_spacing": "trailing"},
            ("SDXL", "epsilon", True),
        ),
        (
            {"cross_attention_dim": 768, "time_cond_proj_dim": 256},
            {"_class_name": "LCMScheduler"},
            ("SD1", "epsilon", True),
        ),
        (
            {"cross_attention_dim": 1024, "use_linear_projection": True},
            {"_class_name": "LCMScheduler"},
            ("SD2", "epsilon", True),
        ),
    ],
)
def test_detect_family_from_configs(engine_api: Any, unet: dict, scheduler: dict, expected: tuple) -> None:
    families = importlib.import_module(engine_api.__name__ + ".families")
    family = families.detect_family(unet, scheduler)
    assert (family.name, family.prediction_type, family.few_step) == expected


@pytest.mark.parametrize(("guidance", "batch"), [(1.0, 1), (0.0, 1), (7.5, 2)])
def test_guidance_at_most_one_runs_no_unconditional_pass(
    engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any, guidance: float, batch: int
) -> None:
    engine.generate(make_request(tiny_model, steps=1))
    batches: list[int] = []
    handle = pipeline_of(engine).unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        engine.generate(make_request(tiny_model, guidance_scale=guidance, steps=3))
    finally:
        handle.remove()
    assert batches == [batch] * 3


# --- progress and cancel -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "scheduler", "steps", "expected_total"),
    [("TXT2IMG", "DPM_SOLVER_MULTISTEP", 5, 5), ("TXT2IMG", "EULER", 3, 3), ("IMG2IMG", "DPM_SOLVER_MULTISTEP", 10, 6)],
)
def test_progress_reports_every_step_with_a_preview(
    engine: Any, make_request: Any, tiny_model: Path, mode: str, scheduler: str, steps: int, expected_total: int
) -> None:
    events: list[Any] = []
    request = make_request(
        tiny_model, mode=mode, init_image=_init_image(64, 96), strength=0.6, width=96, steps=steps, scheduler=scheduler
    )
    engine.generate(request, on_progress=events.append)
    assert [(e.step, e.total, e.stage) for e in events] == [
        (i, expected_total, "DENOISE") for i in range(1, expected_total + 1)
    ]
    for event in events:
        assert event.preview.shape == (8, 12, 3) and event.preview.dtype == np.float32
        assert event.preview.min() >= 0.0 and event.preview.max() <= 1.0
    assert not np.array_equal(events[0].preview, events[-1].preview)


def test_cancel_from_the_progress_callback_stops_within_one_step(
    engine_api: Any, engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    events: list[Any] = []

    def stop_at_two(event: Any) -> None:
        events.append(event)
        if event.step == 2:
            raise engine_api.GenerationCancelled()

    with pytest.raises(engine_api.GenerationCancelled):
        engine.generate(make_request(tiny_sd_model, steps=8), on_progress=stop_at_two)
    assert [e.step for e in events] == [1, 2]
    # Nothing leaks into the next run: it equals a run on a fresh engine.
    request = make_request(tiny_sd_model, steps=3, seamless="BOTH")
    after = engine.generate(request).image
    fresh = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    np.testing.assert_array_equal(after, fresh.generate(request).image)
    fresh.free()


def test_cancel_event_from_another_thread_stops_within_one_step(
    engine_api: Any, engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    engine.generate(make_request(tiny_sd_model, steps=1))  # loaded: the thread below only denoises
    cancel = threading.Event()
    third_step = threading.Event()
    steps_seen: list[int] = []
    outcome: dict[str, Any] = {}

    def on_progress(event: Any) -> None:
        steps_seen.append(event.step)
        if event.step == 3:
            third_step.set()
            cancel.wait(5)  # hold the worker until the main thread has cancelled, so the test is deterministic

    def work() -> None:
        try:
            outcome["result"] = engine.generate(
                make_request(tiny_sd_model, steps=500), on_progress=on_progress, cancel_event=cancel
            )
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=work)
    worker.start()
    assert third_step.wait(60)
    cancel.set()
    worker.join(60)
    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), engine_api.GenerationCancelled) and "result" not in outcome
    assert steps_seen == [1, 2, 3]


def test_cancel_event_set_before_the_start_loads_nothing(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    cancel = threading.Event()
    cancel.set()
    engine = new_engine()
    with pytest.raises(engine_api.GenerationCancelled):
        engine.generate(make_request(tiny_sd_model), cancel_event=cancel)
    assert engine.load_count == 0 and engine.loaded_model() is None


# --- seamless ----------------------------------------------------------------------------------------


def _seam_ratio(image: np.ndarray, axis: str) -> float:
    """Mean |difference| across the wrap seam / the same across interior neighbours at the same 8-px phase.

    The VAE decodes 8x8-pixel cells, so neighbour differences depend on where a pair
    sits in its cell; the seam pair (last, first) is a cell boundary, so it is compared
    with the interior cell boundaries (7|8, 15|16, ...).
    """
    rgb = image[..., :3] if axis == "X" else image[..., :3].transpose(1, 0, 2)
    neighbours = np.abs(np.diff(rgb, axis=1)).mean(axis=(0, 2))
    seam = np.abs(rgb[:, -1] - rgb[:, 0]).mean()
    return float(seam / neighbours[7::8].mean())


def test_seamless_wrap_seam_is_no_worse_than_interior_neighbours(
    engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    """Averaged over seeds: wrapped axes have seams like any interior boundary; the others do not."""
    ratios = {}
    for seamless in ("NONE", "X", "Y", "BOTH"):
        images = [engine.generate(make_request(tiny_sd_model, seed=s, seamless=seamless)).image for s in range(8)]
        ratios[seamless] = {axis: np.mean([_seam_ratio(i, axis) for i in images]) for axis in ("X", "Y")}
    wrapped = {"NONE": (), "X": ("X",), "Y": ("Y",), "BOTH": ("X", "Y")}
    for seamless, by_axis in ratios.items():
        for axis, ratio in by_axis.items():
            if axis in wrapped[seamless]:
                assert ratio <= 1.3, (seamless, axis, ratios)  # statistically 1: an ordinary neighbour
            else:
                assert ratio >= 1.6, (seamless, axis, ratios)  # an unwrapped border is a visible seam


def test_seamless_padding_is_exactly_circular_and_restored(engine_api: Any, tiny_sd_model: Path) -> None:
    """With BOTH, UNet and VAE commute with circular shifts (a texture on a torus); afterwards they do not."""
    import torch
    from diffusers import StableDiffusionPipeline

    tiling = importlib.import_module(engine_api.__name__ + ".tiling")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_model, local_files_only=True)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))

    def shift_error(dims: tuple[int, ...]) -> tuple[float, float]:
        unet = lambda x: pipe.unet(x, 500, encoder_hidden_states=context).sample  # noqa: E731
        decode = lambda x: pipe.vae.decode(x).sample  # noqa: E731
        u = (unet(torch.roll(latents, 4, dims)) - torch.roll(unet(latents), 4, dims)).abs().max()
        v = (decode(torch.roll(latents, 4, dims)) - torch.roll(decode(latents), 32, dims)).abs().max()
        return float(u), float(v)

    with torch.no_grad():
        with tiling.seamless([pipe.unet, pipe.vae], "BOTH") as patched:
            assert patched > 20
            assert max(shift_error((2,)) + shift_error((3,))) < 1e-4
        with tiling.seamless([pipe.unet, pipe.vae], "X"):
            assert max(shift_error((3,))) < 1e-4 and min(shift_error((2,))) > 1e-2
        assert min(shift_error((2,)) + shift_error((3,))) > 1e-2  # restored: zero padding again
        with pytest.raises(RuntimeError), tiling.seamless([pipe.unet], "BOTH"):
            raise RuntimeError("a failing run")
    assert not any("_conv_forward" in vars(m) for m in pipe.unet.modules())


# --- the model cache ---------------------------------------------------------------------------------


def test_second_request_and_mode_switch_reuse_the_loaded_weights(
    new_engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any
) -> None:
    engine = new_engine()
    engine.generate(make_request(tiny_model))
    assert engine.load_count == 1
    txt2img = pipeline_of(engine, "TXT2IMG")
    unet, vae, text_encoder = txt2img.unet, txt2img.vae, txt2img.text_encoder

    engine.generate(make_request(tiny_model, prompt="moss", seed=3, scheduler="EULER", steps=2))
    engine.generate(make_request(tiny_model, mode="IMG2IMG", init_image=_init_image(), strength=0.5, steps=4))
    img2img = pipeline_of(engine, "IMG2IMG")
    assert type(img2img).__name__.endswith("Img2ImgPipeline")
    assert img2img.unet is unet and img2img.vae is vae and img2img.text_encoder is text_encoder
    engine.generate(make_request(tiny_model))
    assert pipeline_of(engine, "TXT2IMG").unet is unet
    assert engine.load_count == 1
    info = engine.loaded_model()
    assert (info.source, info.device, info.dtype) == (str(tiny_model), "cpu", str(engine.dtype).removeprefix("torch."))


def test_free_really_drops_the_model(new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any) -> None:
    engine = new_engine()
    engine.generate(make_request(tiny_sd_model, mode="IMG2IMG", init_image=_init_image(), strength=0.5, steps=4))
    unet = weakref.ref(pipeline_of(engine, "IMG2IMG").unet)
    engine.free()
    gc.collect()
    assert engine.loaded_model() is None and unet() is None
    engine.generate(make_request(tiny_sd_model))
    assert engine.load_count == 2


def test_switching_models_keeps_one_model_in_memory(
    new_engine: Any, make_request: Any, tiny_sd_model: Path, tiny_sdxl_model: Path, pipeline_of: Any
) -> None:
    engine = new_engine()
    engine.generate(make_request(tiny_sd_model))
    sd_unet = weakref.ref(pipeline_of(engine).unet)
    engine.generate(make_request(tiny_sdxl_model))
    gc.collect()
    assert sd_unet() is None and engine.loaded_model().family == "SDXL" and engine.load_count == 2


def test_get_engine_shares_one_engine_until_the_options_change(
    engine_api: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    options = engine_api.EngineOptions(device="CPU")
    first = engine_api.get_engine(options)
    assert engine_api.get_engine(engine_api.EngineOptions(device="CPU")) is first
    assert engine_api.loaded_engine() is first
    first.generate(make_request(tiny_sd_model, steps=1))
    second = engine_api.get_engine(engine_api.EngineOptions(device="CPU", attention_slicing=True))
    assert second is not first and first.loaded_model() is None  # the old one was freed
    assert engine_api.loaded_engine() is second
    second.free()


# --- memory modes and errors -------------------------------------------------------------------------


def test_memory_modes_run_on_cpu(new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any) -> None:
    plain = new_engine(precision="FP32").generate(make_request(tiny_sd_model, width=128, height=128)).image
    # offload is CUDA-only: ignored on CPU. FP32: slicing's rounding, not bf16's, is what is compared.
    sliced = new_engine(attention_slicing=True, cpu_offload=True, precision="FP32")
    np.testing.assert_allclose(
        sliced.generate(make_request(tiny_sd_model, width=128, height=128)).image, plain, atol=1e-4
    )
    tiled = new_engine(vae_tiling="ON")
    image = tiled.generate(make_request(tiny_sd_model, width=128, height=128)).image
    _assert_image(image, 128, 128)
    assert pipeline_of(tiled).vae.use_tiling
    auto = new_engine()
    auto.generate(make_request(tiny_sd_model))
    assert not pipeline_of(auto).vae.use_tiling  # AUTO: only above 1024x1024


def test_out_of_memory_becomes_a_clear_error(
    engine_api: Any, engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any
) -> None:
    import torch

    engine.generate(make_request(tiny_sd_model, steps=1))
    activations: list[Any] = []

    def exhaust(module: Any, args: Any) -> None:
        activation = torch.ones(256, 256)  # held by this frame, as a real run's tensors are
        activations.append(weakref.ref(activation))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = pipeline_of(engine).unet.register_forward_pre_hook(exhaust)
    try:
        with pytest.raises(engine_api.OutOfMemoryError) as raised:
            engine.generate(make_request(tiny_sd_model, seamless="BOTH"))
    finally:
        handle.remove()
    message = str(raised.value)
    assert "ran out of memory" in message and "Attention Slicing" in message and "Width/Height" in message
    assert "Tried to allocate 2.00 GiB" in message
    assert isinstance(raised.value.__cause__, torch.OutOfMemoryError)
    assert activations[0]() is None  # freed although the exception (and its traceback) is still held
    _assert_image(engine.generate(make_request(tiny_sd_model)).image, 64, 64)  # still usable, padding restored


def test_seamless_holds_with_vae_tiling_forced_on(
    new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any
) -> None:
    """A tiled decode (128 px = 2x2 tiles of the tiny VAE) wraps across the whole image, not each tile."""
    engine = new_engine(vae_tiling="ON")
    ratios = {}
    for seamless in ("NONE", "X", "BOTH"):
        images = [engine.generate(make_request(tiny_sd_model, width=128, height=128, seed=s, seamless=seamless)).image
                  for s in range(6)]
        ratios[seamless] = {axis: np.mean([_seam_ratio(i, axis) for i in images]) for axis in ("X", "Y")}
    vae = pipeline_of(engine).vae
    assert vae.use_tiling and 128 // 8 > vae.tile_latent_min_size  # the decode really was tiled
    wrapped = {"NONE": (), "X": ("X",), "BOTH": ("X", "Y")}
    for seamless, by_axis in ratios.items():
        for axis, ratio in by_axis.items():
            if axis in wrapped[seamless]:
                assert ratio <= 1.3, (seamless, axis, ratios)
            else:
                assert ratio >= 1.6, (seamless, axis, ratios)


def test_settings_the_model_does_not_use_are_named(
    engine: Any, make_request: Any, tiny_sd_model: Path, tiny_lcm_model: Path
) -> None:
    """An LCM pipeline takes no negative prompt (diffusers drops it): the result says so instead of staying silent."""
    lcm = engine.generate(make_request(tiny_lcm_model, negative_prompt="blurry", guidance_scale=5, steps=2,
                                       scheduler="LCM"))
    assert lcm.recipe["few_step"] is True
    assert len(lcm.ignored) == 1, lcm.ignored  # guidance is used: LCM's UNet embeds it
    assert "negative prompt has no effect" in lcm.ignored[0] and "LCM" in lcm.ignored[0]
    info = engine.loaded_model()
    assert info.few_step and not info.negative_prompt
    assert engine.generate(make_request(tiny_lcm_model, guidance_scale=1, steps=2, scheduler="LCM")).ignored == []
    # Another scheduler would crash an LCM pipeline (it steps with LCM's own arguments): LCM runs, and it is said.
    euler = engine.generate(make_request(tiny_lcm_model, guidance_scale=1, steps=2, scheduler="EULER"))
    assert euler.ignored == ["The scheduler EULER has no effect: LCM pipelines run the LCM scheduler."]
    assert type(engine._model.pipelines["TXT2IMG"].scheduler).__name__ == "LCMScheduler"

    plain = engine.generate(make_request(tiny_sd_model, negative_prompt="blurry", guidance_scale=7.5))
    assert plain.ignored == [] and engine.loaded_model().negative_prompt and not engine.loaded_model().few_step
    unguided = engine.generate(make_request(tiny_sd_model, negative_prompt="blurry", guidance_scale=1))
    assert len(unguided.ignored) == 1 and "guidance at 1 or below" in unguided.ignored[0]
