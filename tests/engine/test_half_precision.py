"""The GPU's precisions rehearsed on the CPU: torch runs fp16 (and bf16) there, so every path the engine
has (txt2img, img2img, inpaint with 4- and 9-channel UNets, ControlNet, LoRA, tiled and x4 upscale, the
filmstrip and attention recording, the VAE-precision and CPU-offload options) runs at Precision FP16 and
BF16 here, asserting finite pixels, the dtype of every component that ran and the recipe's precision.

Tiny models, 64 px, 2 steps: a dtype mismatch between two components raises at the first call, which is
what these tests are for; the pixels themselves are held only to being finite and in range.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PRECISIONS = {"FP16": "float16", "BF16": "bfloat16"}


@pytest.fixture(scope="module")
def half_engines(engine_api: Any) -> Any:
    """One CPU engine per half precision, shared by the cases (each case loads what it needs into it)."""
    made: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}

    def get(precision: str, **options: Any) -> Any:
        key = (precision, tuple(sorted(options.items())))
        if key not in made:
            made[key] = engine_api.Engine(engine_api.EngineOptions(device="CPU", precision=precision, **options))
        return made[key]

    yield get
    for engine in made.values():
        engine.free()


@pytest.fixture(scope="module")
def tiny_x4(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Path:
    return tiny_models.build_tiny_x4_upscaler(tmp_path_factory.mktemp("x4-half") / "tiny-x4")


def _image(seed: int = 0, height: int = 64, width: int = 64) -> np.ndarray:
    noise = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    return ((noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1)) / 3).astype(np.float32)


def _mask(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.float32)
    mask[16:48, 16:48] = 1.0
    return mask


def _modules(engine: Any) -> dict[str, Any]:
    """Every torch module the engine holds (base model components, ControlNets, the x4 upscaler), by name."""
    import torch

    found: dict[str, Any] = {}
    for slot in ("model", "controlnet", "upscaler"):
        for index, entry in enumerate(engine.cache.entries(slot).values()):
            pipes = list(getattr(entry, "pipelines", {}).values()) or [getattr(entry, "pipe", entry)]
            for pipe in pipes:
                components = getattr(pipe, "components", {"model": pipe})
                for name, component in components.items():
                    if isinstance(component, torch.nn.Module):
                        found[f"{slot}{index}.{name}"] = component
    return found


@contextlib.contextmanager
def _ran() -> Iterator[dict[int, tuple[str, set[str]]]]:
    """What ran meanwhile: every module called (any model, loaded or not) -> (its class, its own weights' dtypes)."""
    import torch

    seen: dict[int, tuple[str, set[str]]] = {}

    def record(module: Any, args: Any) -> None:
        dtypes = {str(p.dtype).removeprefix("torch.") for p in module.parameters(recurse=False) if p.is_floating_point()}
        if dtypes:
            seen.setdefault(id(module), (type(module).__name__, set()))[1].update(dtypes)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


def _check(
    engine: Any, result: Any, ran: dict[int, tuple[str, set[str]]], precision: str, expect: tuple[str, ...],
    recipe: Any = None,
) -> None:
    """Finite pixels; the recipe's precision; every module that ran, and every one the engine holds, in it."""
    assert ran, "no module ran"
    wrong_run = {name: dtypes for name, dtypes in ran.values() if dtypes != {PRECISIONS[precision]}}
    assert not wrong_run, wrong_run
    image = result.image
    assert np.isfinite(image).all(), "non-finite pixels"
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert float(image[..., :3].std()) > 0.0, "a flat image"
    recipe = result.recipe if recipe is None else recipe
    assert recipe["dtype"] == PRECISIONS[precision]
    assert recipe["device"] == "cpu"
    modules = _modules(engine)
    for wanted in expect:
        assert any(name.endswith("." + wanted) for name in modules), (wanted, sorted(modules))
    wrong = {
        name: sorted({str(p.dtype) for p in module.parameters() if p.is_floating_point()})
        for name, module in modules.items()
        if any(p.is_floating_point() and str(p.dtype) != f"torch.{PRECISIONS[precision]}" for p in module.parameters())
    }
    assert not wrong, wrong


BASE_CASES = ("TXT2IMG", "IMG2IMG", "INPAINT", "INPAINT_9", "CONTROLNET", "LORA", "RECORDING")


@pytest.mark.parametrize("case", BASE_CASES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_generation_path_runs_in_half_precision(
    engine_api, half_engines, make_request, control_image, tiny_sd_model, tiny_inpaint_model, tiny_controlnet,
    tiny_lora, precision, case,
) -> None:
    engine = half_engines(precision)
    fields: dict[str, Any] = {"steps": 2}
    model = tiny_sd_model
    expect = ("unet", "vae", "text_encoder")
    recorder = None
    if case == "IMG2IMG":
        fields.update(mode="IMG2IMG", init_image=_image(), strength=0.7)
    elif case in ("INPAINT", "INPAINT_9"):
        fields.update(mode="INPAINT", init_image=_image(), mask_image=_mask(), strength=1.0)
        model = tiny_inpaint_model if case == "INPAINT_9" else tiny_sd_model
    elif case == "CONTROLNET":
        fields.update(control="DEPTH", control_image=control_image(), control_model=str(tiny_controlnet))
        expect += ("controlnet",)
    elif case == "LORA":
        fields.update(loras=(engine_api.LoraSpec(str(tiny_lora), 0.8),))
    elif case == "RECORDING":
        insight = importlib.import_module(engine_api.__name__ + ".insight")
        recorder = insight.InsightRecorder(filmstrip=True, attention=True)
        fields.update(prompt="red brick wall")
    with _ran() as ran:
        result = engine.generate(make_request(model, **fields), recorder=recorder)
    _check(engine, result, ran, precision, expect)
    if case == "INPAINT_9":
        assert engine._model.base.unet.config.in_channels == 9
    if case == "LORA":
        assert [entry["weight"] for entry in result.recipe["loras"]] == [0.8]
    if recorder is not None:
        kinds = {image.recipe.get("insight") for image in recorder.images}
        assert kinds == {"filmstrip", "attention"}, kinds
        for image in recorder.images:
            assert np.isfinite(image.image).all()
        assert recorder.word_maps is not None and np.isfinite(recorder.word_maps).all()


@pytest.mark.parametrize("method", ["TILED_DIFFUSION", "X4_UPSCALER"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_both_upscalers_run_in_half_precision(engine_api, half_engines, tiny_sd_model, tiny_x4, precision, method):
    engine = half_engines(precision)
    fields: dict[str, Any] = {"image": _image(height=40, width=72), "model": str(tiny_sd_model), "prompt": "stone", "factor": 2,
                              "steps": 2, "seed": 5, "control": "NONE", "method": method}
    if method == "X4_UPSCALER":
        fields.update(upscaler_model=str(tiny_x4), factor=4)
    fields.update(tile_size=128, tile_overlap=64, strength=0.5)  # several tiles each way: the blend runs too
    with _ran() as ran:
        result = engine.upscale(engine_api.UpscaleRequest(**fields))
    if method == "X4_UPSCALER" and precision == "FP16":
        # diffusers' x4 pipeline decodes in fp32 where the VAE's config says fp16 overflows (force_upcast), then
        # casts it back: the only fp32 allowed, and only inside that VAE
        vae = next(iter(engine.cache.entries("upscaler").values())).pipe.vae
        assert vae.config.force_upcast
        in_vae = [ran.pop(id(module))[1] for module in vae.modules() if id(module) in ran]
        assert in_vae and all(dtypes == {"float32"} for dtypes in in_vae)
    _check(engine, result, ran, precision, ("unet", "vae"), recipe=result.recipe["upscale"])
    assert result.recipe["upscale"]["method"] == method
    assert result.image.shape[:2] == (40 * fields["factor"], 72 * fields["factor"])
    assert result.recipe["upscale"]["tiles"] > 1


@pytest.mark.parametrize(("option", "value"), [("vae_precision", "FP32"), ("cpu_offload", True)])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_memory_and_precision_options_run_in_half_precision(
    half_engines, make_request, tiny_sd_model, precision, option, value
) -> None:
    """VAE precision FP32 decodes in fp32 and puts the VAE back in the engine's precision; CPU offload is a GPU
    option (accelerate offloads to the CPU from an accelerator): on the CPU the run is the plain run."""
    import torch

    engine = half_engines(precision, **{option: value})
    engine.load(str(tiny_sd_model))
    vae = engine._model.base.vae
    vae_modules = {id(module) for module in vae.modules()}
    with _ran() as ran:
        result = engine.generate(make_request(tiny_sd_model, steps=2))
    in_vae = [dtypes for key, (_name, dtypes) in ran.items() if key in vae_modules]
    rest = {key: value for key, value in ran.items() if key not in vae_modules}
    _check(engine, result, rest, precision, ("unet", "vae", "text_encoder"))
    plain = half_engines(precision).generate(make_request(tiny_sd_model, steps=2))
    if option == "cpu_offload":
        assert not engine.placement.offloads
        assert in_vae and all(dtypes == {PRECISIONS[precision]} for dtypes in in_vae)
        np.testing.assert_array_equal(result.image, plain.image)
    else:
        assert in_vae and all(dtypes == {"float32"} for dtypes in in_vae)
        # the same latents decoded in fp32 instead of half: within a few roundings of the half decode, not it
        difference = np.abs(result.image - plain.image).max()
        assert 0 < difference < 16 * torch.finfo(getattr(torch, PRECISIONS[precision])).eps
