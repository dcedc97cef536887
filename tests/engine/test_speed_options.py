"""Every speed option keeps the picture: same seed => same image, within a stated tolerance, as the plain path.

The plain (unoptimised) path is the engine in fp32 with ``channels_last="OFF"``, the VAE
decoded in fp32, no ``torch_compile``, no VAE tiling and a prompt it has not seen
(the text encoder runs). Tolerances, on the tiny models (values 0..1), with what
was measured when they were set:

* prompt-embedding cache, the engine's own VAE decode: bit-identical; weights packed once
  (``pack_weights``, the CPU default): bit-identical in fp32 with channels_last, one bf16
  step in some layers in bf16 (see ``test_packed_weights_keep_the_picture``);
* ``channels_last`` (the CPU default) and ``torch_compile``: float rounding only,
  max |diff| <= 1e-4 (seen 2.6e-6 and 0);
* ``precision="BF16"`` (bf16 weights and activations), and ``AUTO`` where that is bf16
  (CPUs with native bf16): measured in bf16 ulps of the picture (``BF16_ULP``), never in
  one machine's figures, because oneDNN rounds bf16 differently per CPU (AMX, AVX-512 BF16,
  AVX2 emulation): mean |diff| <= 4 ulps (4 of 255 levels: no visible shift) and the 99th
  percentile <= 32 ulps. Single pixels are not bounded: a random tiny model's denoising
  amplifies some roundings (seen up to 0.11 with AVX2's emulated bf16). A bf16 VAE decode
  alone (the same bf16 latents) moves values by at most 8 ulps (seen 2);
* the fp32 fallback of a half-precision VAE: bit-identical to decoding in fp32.

VAE tiling is not here as a speed option: it trades exactness at tile borders for
memory (tiny VAE, 128x128: mean |diff| 0.07), which is why ``AUTO`` now turns it on
only when a decode would not fit; that decision is tested instead. No timings are
asserted anywhere: speed lives in ``bench/`` (``make bench``).
"""

from __future__ import annotations

import functools
import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PLAIN = {"precision": "FP32", "channels_last": "OFF", "vae_precision": "FP32", "vae_tiling": "OFF", "torch_compile": False,
         "pack_weights": False}
# One bf16 rounding of the picture's largest values: the VAE writes [-1, 1] and the picture is (x + 1) / 2;
# bf16 keeps 8 significant bits, so one ulp at magnitude 1 is 2**-7 there and 2**-8 in the picture.
BF16_ULP = 2.0**-8


def assert_bf16_keeps_the_picture(image: np.ndarray, plain: np.ndarray, what: str = "") -> None:
    """A bf16 run against the plain fp32 path (values 0..1): the bound of the module docstring."""
    diff = np.abs(image - plain)
    mean, p99 = float(diff.mean()), float(np.quantile(diff, 0.99))
    assert mean <= 4 * BF16_ULP and p99 <= 32 * BF16_ULP, (what, mean / BF16_ULP, p99 / BF16_ULP)


@pytest.fixture(params=["sd", "sdxl"])
def tiny_model(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue({"sd": "tiny_sd_model", "sdxl": "tiny_sdxl_model"}[request.param])


@pytest.fixture
def plain_image(new_engine: Any, make_request: Any) -> Any:
    """``plain_image(model, **request_fields)``: the image of the unoptimised path."""

    def make(model: Path, **fields: Any) -> np.ndarray:
        return new_engine(**PLAIN).generate(make_request(model, **fields)).image

    return make


def _text_encoder_calls(pipe: Any) -> list[str]:
    calls: list[str] = []
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            encoder.register_forward_pre_hook(lambda module, args, name=name: calls.append(name))
    return calls


# --- exact: the decode path and the prompt cache -----------------------------------------------------


def test_engine_decode_is_bit_identical_to_diffusers(new_engine: Any, make_request: Any, tiny_model: Path) -> None:
    """The engine decodes the latents itself (fp32 fallback, timings): exactly as the pipeline would."""
    import torch
    from diffusers import AutoPipelineForText2Image, DPMSolverMultistepScheduler

    image = new_engine(**PLAIN).generate(make_request(tiny_model)).image[..., :3]
    pipe = AutoPipelineForText2Image.from_pretrained(tiny_model, local_files_only=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=False
    )
    pipe.set_progress_bar_config(disable=True)
    raw = pipe(
        "red brick wall",
        num_inference_steps=3,
        guidance_scale=7.5,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
    ).images[0]
    np.testing.assert_array_equal(image, raw)


def test_repeated_prompt_skips_the_text_encoder_and_is_bit_identical(
    new_engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any, plain_image: Any
) -> None:
    engine = new_engine(precision="FP32")
    first = engine.generate(make_request(tiny_model, seed=1))
    calls = _text_encoder_calls(pipeline_of(engine))
    again = engine.generate(make_request(tiny_model))  # same prompt, another seed
    assert calls == [] and again.timings["encode_prompt"] == 0.0
    np.testing.assert_array_equal(again.image, new_engine(precision="FP32").generate(make_request(tiny_model)).image)
    assert first.timings["encode_prompt"] > 0.0

    engine.generate(make_request(tiny_model, prompt="moss"))  # a new prompt encodes again
    assert calls
    calls.clear()
    engine.generate(make_request(tiny_model, prompt="moss", negative_prompt="blurry"))
    assert calls  # the negative prompt is part of the key
    calls.clear()
    engine.generate(make_request(tiny_model, prompt="moss", guidance_scale=1.0))
    assert calls  # no CFG: a different call, its own entry
    np.testing.assert_allclose(again.image, plain_image(tiny_model), atol=1e-4)


def test_prompt_cache_is_bounded_and_dropped_with_the_model(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any
) -> None:
    prompt_embeddings = importlib.import_module(engine_api.__name__ + ".prompt_embeddings")
    engine = new_engine()
    prompts = [f"stone {i}" for i in range(prompt_embeddings.PROMPT_CACHE_SIZE + 1)]
    for prompt in prompts:
        engine.generate(make_request(tiny_sd_model, prompt=prompt, steps=1))
    calls = _text_encoder_calls(pipeline_of(engine))
    engine.generate(make_request(tiny_sd_model, prompt=prompts[-1], steps=1))
    assert calls == []  # the newest is kept
    engine.generate(make_request(tiny_sd_model, prompt=prompts[0], steps=1))
    assert calls  # the oldest was dropped
    assert len(engine._model.prompt_cache) == prompt_embeddings.PROMPT_CACHE_SIZE
    engine.free()
    engine.generate(make_request(tiny_sd_model, prompt=prompts[-1], steps=1))
    assert len(engine._model.prompt_cache) == 1


@pytest.fixture
def packed_weights(engine_api: Any) -> Any:
    module = importlib.import_module(engine_api.__name__ + ".packed_weights")
    if not module.supported():
        pytest.skip("this torch/CPU has no oneDNN convolution packing (x86 only)")
    return module


def _packed_bytes(packed_weights: Any, pipe: Any) -> int:
    return packed_weights.packed_bytes((pipe.unet, pipe.vae))


@pytest.mark.parametrize(("precision", "channels_last"), [("FP32", "ON"), ("BF16", "ON"), ("BF16", "OFF"), ("FP32", "OFF")])
def test_packed_weights_keep_the_picture(
    new_engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any, packed_weights: Any, plain_image: Any,
    precision: str, channels_last: str,
) -> None:
    """The same oneDNN kernels with the weights packed once, also seamless (its own padding).

    fp32 with channels_last (the CPU default for an FP32 precision): the same bits. fp32 NCHW (not a
    default): eager torch convolves some NCHW inputs with other kernels, float rounding only. bf16: the
    packed linear layers may take another matmul kernel than eager torch (one bf16 step per layer, see
    ``test_packed_linear_follows_its_weight_and_its_module``), and which one differs per CPU, so the packed
    picture is held to what any bf16 run is held to: the plain fp32 picture within bf16's bound."""
    options = {"precision": precision, "channels_last": channels_last, "vae_precision": "AUTO"}
    packed, unpacked = new_engine(**options), new_engine(**options, pack_weights=False)
    for fields in ({}, {"seamless": "BOTH", "width": 96}):
        image = packed.generate(make_request(tiny_model, **fields)).image
        if precision == "BF16":
            assert_bf16_keeps_the_picture(image, plain_image(tiny_model, **fields), f"packed {fields}")
            continue
        expected = unpacked.generate(make_request(tiny_model, **fields)).image
        if channels_last == "ON":
            np.testing.assert_array_equal(image, expected)
        else:
            np.testing.assert_allclose(image, expected, atol=1e-4)
        assert _packed_bytes(packed_weights, pipeline_of(unpacked)) == 0
    pipe = pipeline_of(packed)
    # bf16 where oneDNN cannot take bf16 weights (AVX2-only CPUs): nothing packed, eager torch runs the layers
    assert (_packed_bytes(packed_weights, pipe) > 0) == (precision == "FP32" or packed_weights.onednn_runs_bf16())
    assert packed_weights.packable_bytes((pipe.vae,), installed=True) == 0  # the UNet only: the VAE gained nothing
    # seamless swapped its own padding in and gave the packed forward back
    assert all(isinstance(vars(m).get("_conv_forward"), packed_weights.PackedConvForward)
               for m in pipe.unet.modules() if packed_weights.can_pack(m) or "_conv_forward" in vars(m))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_convolutions_are_bit_identical_with_channels_last(packed_weights: Any, dtype: str) -> None:
    """The SD UNet's convolution shapes (stem, 3x3 at every level, 1x1 shortcut, strided downsample, 4-channel out)
    with CFG's batch of 2. At batch 1 eager torch runs small fp32 convolutions with its own kernel: rounding."""
    import torch

    torch.manual_seed(0)
    for cin, cout, side, kernel, stride in ((4, 32, 16, 3, 1), (32, 64, 8, 3, 1), (64, 64, 4, 3, 1), (32, 64, 8, 1, 1),
                                            (64, 64, 8, 3, 2), (64, 4, 16, 3, 1)):
        conv = torch.nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2).eval()
        conv = conv.to(getattr(torch, dtype), memory_format=torch.channels_last)
        for batch in (1, 2):
            x = torch.randn(batch, cin, side, side).to(conv.weight.dtype, memory_format=torch.channels_last)
            with torch.no_grad():
                expected = conv(x)
                assert packed_weights.pack([conv]) == 1
                if batch == 2 or dtype == "bfloat16":
                    assert torch.equal(conv(x), expected), (cin, cout, side, kernel, stride, batch)
                else:
                    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
                assert packed_weights.unpack([conv]) == 1


def test_packed_linear_follows_its_weight_and_its_module(packed_weights: Any) -> None:
    """bf16 only (fp32 stays F.linear); a deep copy computes with its own weights; freeing needs no collector."""
    import copy
    import gc
    import weakref

    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32).eval()
    x = torch.randn(2, 7, 64)
    assert packed_weights.pack([linear]) == 1
    with torch.no_grad():
        assert torch.equal(linear(x), F.linear(x, linear.weight, linear.bias))  # fp32: not packed
        assert packed_weights.packed_bytes([linear]) == 0 and packed_weights.packable_bytes([linear], installed=True) == 0
        linear.to(torch.bfloat16)
        xb = x.bfloat16()
        for module in (linear, copy.deepcopy(linear)):
            module.weight.mul_(-1)  # the copy diverges from the original
            expected = F.linear(xb, module.weight, module.bias).float()
            torch.testing.assert_close(module(xb).float(), expected, rtol=0.02, atol=0.02)  # one bf16 step at most
            torch.testing.assert_close(module(xb[0]).float(), expected[0], rtol=0.02, atol=0.02)  # another shape
        # where oneDNN cannot take bf16 weights (AVX2-only CPUs) the layer keeps eager torch: nothing packed
        packed_size = linear.weight.numel() * 2 if packed_weights.onednn_runs_bf16() else 0
        assert packed_weights.packed_bytes([linear]) == packed_size
        assert packed_weights.packable_bytes([linear], installed=True) == packed_size
    gc.disable()
    try:
        gone = weakref.ref(linear)
        del linear
        assert gone() is None  # no module -> forward -> module cycle
    finally:
        gc.enable()


def test_packed_convolution_follows_its_weight(packed_weights: Any) -> None:
    """A weight written in place, cast, replaced or copied is packed again: never a stale copy."""
    import copy

    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 6, 6).to(memory_format=torch.channels_last)
    assert packed_weights.pack([conv]) == 1

    def check(module: Any, data: Any) -> None:  # a stale packed weight would be off by its whole change
        expected = F.conv2d(data, module.weight, module.bias, module.stride, module.padding)
        torch.testing.assert_close(module(data), expected, rtol=1e-5, atol=1e-5)

    with torch.no_grad():
        check(conv, x)
        conv.weight.mul_(2)  # in place: a new version
        check(conv, x)
        conv.to(torch.bfloat16)  # new memory, new dtype
        check(conv, x.bfloat16())
        conv.to(torch.float32)
        conv.weight.data = torch.randn_like(conv.weight)  # replaced
        check(conv, x)
        twin = copy.deepcopy(conv)
        twin.weight.add_(1)
        check(twin, x)
        check(conv, x)  # the original kept its own
        check(conv, x[:1, :, :4, :5].contiguous())  # another shape and layout
    assert packed_weights.packed_bytes([conv]) == conv.weight.numel() * 4
    # with a gradient asked for it is F.conv2d itself (the packed op has no backward)
    conv.weight.requires_grad_(True)
    conv(x).sum().backward()
    assert conv.weight.grad is not None
    assert packed_weights.unpack([conv]) == 1 and "_conv_forward" not in vars(conv)
    assert packed_weights.packed_bytes([conv]) == 0
    circular = torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular")
    assert packed_weights.pack([circular]) == 0  # its own padding mode stays with F.conv2d


def test_packing_leaves_room_in_memory(
    engine_api: Any, monkeypatch: pytest.MonkeyPatch, new_engine: Any, make_request: Any, tiny_sd_model: Path,
    pipeline_of: Any, packed_weights: Any,
) -> None:
    """The packed copies count as resident weights (VAE tiling AUTO); no room for them: no packing, same pixels."""
    devices = importlib.import_module(engine_api.__name__ + ".devices")
    engine = new_engine(precision="FP32")  # bit-identical packed or not
    image = engine.generate(make_request(tiny_sd_model)).image
    pipe = pipeline_of(engine)
    extra = packed_weights.packable_bytes((pipe.unet, pipe.vae), installed=True)
    params = sum(p.numel() * p.element_size() for m in pipe.components.values() if hasattr(m, "parameters")
                 for p in m.parameters())
    assert extra > 0 and engine._model.weight_bytes == params + extra
    monkeypatch.setattr(devices, "total_memory", lambda device: 2 * params + extra // 2)  # too little for the copies
    tight = new_engine(precision="FP32")
    np.testing.assert_array_equal(tight.generate(make_request(tiny_sd_model)).image, image)
    assert packed_weights.packable_bytes((pipeline_of(tight).unet,), installed=True) == 0
    assert tight._model.weight_bytes == params


def test_seamless_packs_its_copies_once_and_counts_them(
    engine_api: Any, monkeypatch: pytest.MonkeyPatch, new_engine: Any, make_request: Any, tiny_sd_model: Path,
    pipeline_of: Any, packed_weights: Any,
) -> None:
    """oneDNN packs a weight for one padding: a seamless run (unpadded convolutions on a wrapped input) packs a
    copy of each padded convolution once, every later run reuses it, and it counts as resident weights; where
    it does not fit, seamless runs those convolutions unpacked. FP32 with channels_last: the same bits as
    unpacked (``test_packed_weights_keep_the_picture``), so every comparison here is exact."""
    import torch

    reorders: list[tuple[int, ...]] = []
    reorder = torch.ops.mkldnn._reorder_convolution_weight

    def counted(weight: Any, *args: Any) -> Any:
        reorders.append(tuple(weight.shape))
        return reorder(weight, *args)

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_convolution_weight", counted)
    engine = new_engine(precision="FP32")
    plain = engine.generate(make_request(tiny_sd_model)).image
    unet = pipeline_of(engine).unet
    base_bytes, packed = engine._model.weight_bytes, packed_weights.packed_bytes((unet,))
    padded = [m for m in unet.modules() if isinstance(m, torch.nn.Conv2d) and any(m.padding)]
    twin_bytes = sum(m.weight.numel() * m.weight.element_size() for m in padded)
    assert packed_weights.seamless_bytes((unet,)) == twin_bytes > 0
    reorders.clear()
    first = engine.generate(make_request(tiny_sd_model, seamless="BOTH")).image
    assert len(reorders) == len(padded)  # each padded convolution's unpadded copy, packed once
    assert packed_weights.packed_bytes((unet,)) == packed + twin_bytes and packed_weights.seamless_bytes((unet,)) == 0
    assert engine._model.weight_bytes == base_bytes + twin_bytes  # counted against the memory share
    reorders.clear()
    second = engine.generate(make_request(tiny_sd_model, seamless="X")).image
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model, seamless="BOTH")).image, first)
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)
    assert reorders == []  # nothing packed again, seamless or not
    assert engine._model.weight_bytes == base_bytes + twin_bytes
    unpacked = new_engine(precision="FP32", pack_weights=False)
    np.testing.assert_array_equal(first, unpacked.generate(make_request(tiny_sd_model, seamless="BOTH")).image)
    np.testing.assert_array_equal(second, unpacked.generate(make_request(tiny_sd_model, seamless="X")).image)
    # no room for the copies beside what is resident: seamless runs the padded convolutions unpacked
    devices = importlib.import_module(engine_api.__name__ + ".devices")
    share = importlib.import_module(engine_api.__name__ + ".placement").PACKED_WEIGHTS_MEMORY_SHARE
    monkeypatch.setattr(devices, "total_memory", lambda device: int((base_bytes + twin_bytes // 2) / share))
    tight = new_engine(precision="FP32", vae_tiling="OFF")  # AUTO would tile in so little memory
    tight.generate(make_request(tiny_sd_model))
    assert tight._model.weight_bytes == base_bytes  # the plain copies fit
    reorders.clear()
    np.testing.assert_array_equal(tight.generate(make_request(tiny_sd_model, seamless="BOTH")).image, first)
    assert reorders == [] and tight._model.weight_bytes == base_bytes
    assert packed_weights.seamless_bytes((pipeline_of(tight).unet,)) == twin_bytes


def test_packing_is_for_the_cpu_without_compile(new_engine: Any) -> None:
    import torch

    assert not new_engine(pack_weights=False).packs_weights
    assert not new_engine(torch_compile=True).packs_weights  # weight freezing packs them itself
    gpu_like = new_engine()
    gpu_like.device = torch.device("cuda")  # the decision only (nothing runs)
    assert not gpu_like.packs_weights
    assert new_engine().packs_weights


# --- float rounding: memory layout and compilation ---------------------------------------------------


def test_channels_last_keeps_the_image(
    new_engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any, plain_image: Any
) -> None:
    import torch

    engine = new_engine(channels_last="ON", precision="FP32")
    image = engine.generate(make_request(tiny_model, width=96)).image
    assert pipeline_of(engine).unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    plain = plain_image(tiny_model, width=96)
    np.testing.assert_allclose(image, plain, atol=1e-4)
    assert np.abs(image - plain).mean() < 1e-5


def test_channels_last_auto_is_on_for_the_cpu_only(engine_api: Any, new_engine: Any) -> None:
    import torch

    assert new_engine().channels_last and not new_engine(channels_last="OFF").channels_last
    gpu_like = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    gpu_like.device = torch.device("cuda")  # the decision only (nothing runs): not measured on GPUs, so off
    assert not gpu_like.channels_last


def test_torch_compile_keeps_the_image(
    monkeypatch: pytest.MonkeyPatch, new_engine: Any, make_request: Any, tiny_sd_model: Path, plain_image: Any,
    pipeline_of: Any,
) -> None:
    """The real compiler (inductor) takes minutes; the eager backend runs the same graph capture in seconds."""
    import torch

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    engine = new_engine(torch_compile=True, precision="FP32")
    result = engine.generate(make_request(tiny_sd_model))
    assert hasattr(pipeline_of(engine).unet, "_orig_mod")  # compiled
    assert result.timings["first_step"] >= 0.0
    np.testing.assert_allclose(result.image, plain_image(tiny_sd_model), atol=1e-4)
    # Seamless runs eagerly (a compiled graph has no circular padding) and gives the seamless image.
    seamless = engine.generate(make_request(tiny_sd_model, seamless="BOTH")).image
    np.testing.assert_allclose(seamless, plain_image(tiny_sd_model, seamless="BOTH"), atol=1e-4)
    assert hasattr(pipeline_of(engine).unet, "_orig_mod")  # and the compiled UNet is back
    torch._dynamo.reset()


def test_a_failing_compile_is_a_clear_error(
    engine_api: Any, monkeypatch: pytest.MonkeyPatch, new_engine: Any, make_request: Any, tiny_sd_model: Path
) -> None:
    """E.g. no C++ compiler for inductor: the artist is told which preference to turn off."""
    import torch

    def no_compiler(graph: Any, inputs: Any) -> Any:
        raise RuntimeError("no working C++ compiler found")

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=no_compiler))
    try:
        with pytest.raises(engine_api.EngineError, match="Compile the Model"):
            new_engine(torch_compile=True).generate(make_request(tiny_sd_model, steps=1))
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_compiled_code_is_cached_in_the_given_folder_and_keeps_the_numbers(
    engine_api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dtype_name: str
) -> None:
    """The real compiler with the engine's CPU settings (inductor, weight freezing) on one UNet block.

    What it wrote lands in ``compile_cache_dir/torch-<version>``, and compiling the same graph
    again (a new Blender session) is a cache hit, not a new compile. Tolerances: fp32 1e-4
    (rounding only); bf16 2 % of the output's range (bf16 keeps 8 bits of mantissa).
    """
    import torch
    from diffusers.models.resnet import ResnetBlock2D
    from torch._dynamo.utils import counters

    compiling = importlib.import_module(engine_api.__name__ + ".compiling")
    monkeypatch.delenv(compiling.CACHE_ENV, raising=False)  # restored afterwards: the setting is process-wide
    folder = compiling.use_cache_folder(str(tmp_path))
    assert folder == tmp_path / f"torch-{torch.__version__}" and folder.is_dir()
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    block = ResnetBlock2D(in_channels=32, out_channels=64, temb_channels=None, groups=8).eval()
    block.to(dtype=dtype, memory_format=torch.channels_last)
    sample = torch.randn(2, 32, 16, 16, dtype=dtype).to(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            expected = block(sample, None).float()
            counters.clear()
            compiled = compiling.compile_module(block, torch.device("cpu"))
            got = compiled(sample, None).float()
            assert counters["inductor"]["fxgraph_cache_miss"] == 1
            assert any(folder.rglob("*.py")) and any(folder.rglob("*.so"))  # the generated code and its library
            torch._dynamo.reset()  # forget the compiled graph in memory, as a new process would not have it
            counters.clear()
            again = compiling.compile_module(block, torch.device("cpu"))(sample, None).float()
            assert counters["inductor"]["fxgraph_cache_hit"] == 1 and counters["inductor"]["fxgraph_cache_miss"] == 0
    finally:
        torch._dynamo.reset()
    scale = float(expected.abs().max())
    tolerance = 1e-4 if dtype == torch.float32 else 0.02 * scale
    assert float((got - expected).abs().max()) <= tolerance
    torch.testing.assert_close(again, got, rtol=0, atol=0)  # the cached code computes the same bits


def test_compile_settings_per_device(engine_api: Any) -> None:
    import torch

    compiling = importlib.import_module(engine_api.__name__ + ".compiling")
    assert compiling.compile_options(torch.device("cpu")) == {"freezing": True}  # weights pre-packed for oneDNN, fused
    assert compiling.compile_options(torch.device("cuda")) == {}  # not measured there: torch's defaults
    assert compiling.use_cache_folder(None) is None


# --- reduced precision -------------------------------------------------------------------------------


def test_bf16_keeps_the_picture(new_engine: Any, make_request: Any, tiny_model: Path, plain_image: Any) -> None:
    plain = plain_image(tiny_model)
    for vae_precision in ("AUTO", "FP32"):
        image = new_engine(precision="BF16", vae_precision=vae_precision).generate(make_request(tiny_model)).image
        assert_bf16_keeps_the_picture(image, plain, vae_precision)
    bf16_vae = new_engine(precision="BF16").generate(make_request(tiny_model)).image
    fp32_vae = new_engine(precision="BF16", vae_precision="FP32").generate(make_request(tiny_model)).image
    assert np.abs(bf16_vae - fp32_vae).max() <= 8 * BF16_ULP  # the decode alone: the same bf16 latents


def test_auto_precision_keeps_the_picture_and_repeats_bit_for_bit(
    new_engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any, plain_image: Any
) -> None:
    """The default path: bf16 where the CPU has native bf16 (within bf16's tolerance of fp32), else fp32."""
    import torch

    engine = new_engine()
    result = engine.generate(make_request(tiny_model))
    pipe = pipeline_of(engine)
    # Nothing left in fp32 by accident: text encoder(s), UNet and VAE all run in the engine's dtype.
    for name in ("text_encoder", "text_encoder_2", "unet", "vae"):
        module = getattr(pipe, name, None)
        if module is not None:
            assert {p.dtype for p in module.parameters()} == {engine.dtype}, name
    assert result.recipe["dtype"] == str(engine.dtype).removeprefix("torch.")
    plain = plain_image(tiny_model)
    if engine.dtype == torch.float32:
        np.testing.assert_allclose(result.image, plain, atol=1e-4)
    else:
        assert engine.dtype == torch.bfloat16
        assert_bf16_keeps_the_picture(result.image, plain, "AUTO")
    again = new_engine().generate(make_request(tiny_model)).image  # same seed, a fresh engine: the same bits
    np.testing.assert_array_equal(again, result.image)


def test_half_precision_vae_overflow_falls_back_to_fp32(
    new_engine: Any, make_request: Any, tiny_model: Path, pipeline_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A VAE that overflows in half precision (NaN/inf) is decoded again in fp32, and stays fp32 for the model."""
    import torch

    engine = new_engine(precision="BF16")
    engine.generate(make_request(tiny_model, steps=1))
    dtypes: list[torch.dtype] = []

    def overflow(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        dtypes.append(output.dtype)
        return output * float("inf") if output.dtype != torch.float32 else output

    pipe = pipeline_of(engine)
    pipe.vae.decoder.register_forward_hook(overflow)
    with caplog.at_level(logging.WARNING):
        image = engine.generate(make_request(tiny_model)).image
    assert dtypes == [torch.bfloat16, torch.float32] and "overflowed" in caplog.text
    assert pipe.vae.dtype == torch.bfloat16  # cast back after the fp32 decode
    expected = new_engine(precision="BF16", vae_precision="FP32").generate(make_request(tiny_model)).image
    np.testing.assert_array_equal(image, expected)
    dtypes.clear()
    engine.generate(make_request(tiny_model))
    assert dtypes == [torch.float32]  # remembered: no wasted half-precision decode


def test_non_finite_output_is_a_clear_error(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path, pipeline_of: Any
) -> None:
    engine = new_engine()
    engine.generate(make_request(tiny_sd_model, steps=1))
    handle = pipeline_of(engine).vae.decoder.register_forward_hook(lambda m, a, out: out * float("nan"))
    try:
        with pytest.raises(engine_api.EngineError, match=r"NaN or infinity.*precision"):
            engine.generate(make_request(tiny_sd_model))
    finally:
        handle.remove()
    assert np.isfinite(engine.generate(make_request(tiny_sd_model)).image).all()


# --- VAE tiling: only when the decode would not fit ----------------------------------------------------


def test_vae_tiling_auto_decides_by_memory(engine_api: Any) -> None:
    decoding = importlib.import_module(engine_api.__name__ + ".decoding")
    needed = decoding.vae_tiling_needed
    gb = 2**30
    sd15_weights = int(4.3 * gb)
    assert not needed(2048 * 2048, 4, 64 * gb, sd15_weights)  # 12 GB decode beside 60 GB free
    assert needed(2048 * 2048, 4, 16 * gb, sd15_weights)
    assert not needed(1024 * 1024, 4, 16 * gb, sd15_weights)  # 3 GB decode: the old rule's limit, still untiled
    assert needed(1024 * 1024, 4, 8 * gb, sd15_weights)  # ... unless the machine is small
    assert not needed(2048 * 2048, 2, 24 * gb, int(7 * gb))  # half precision halves the need
    assert needed(1032 * 1024, 4, None, 0) and not needed(1024 * 1024, 4, None, 0)  # memory unknown: the old rule


def test_vae_tiling_auto_follows_the_device_memory(
    engine_api: Any, monkeypatch: pytest.MonkeyPatch, new_engine: Any, make_request: Any, tiny_sd_model: Path,
    pipeline_of: Any,
) -> None:
    devices = importlib.import_module(engine_api.__name__ + ".devices")
    engine = new_engine()
    engine.generate(make_request(tiny_sd_model, steps=1))
    assert not pipeline_of(engine).vae.use_tiling and not engine.needs_vae_tiling(64 * 64)
    monkeypatch.setattr(devices, "total_memory", lambda device: engine._model.weight_bytes + 1024)
    engine.generate(make_request(tiny_sd_model, steps=1))
    assert pipeline_of(engine).vae.use_tiling


# --- the options themselves ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "word"),
    [({"channels_last": "YES"}, "channels_last"), ({"vae_precision": "FP16"}, "vae_precision"),
     ({"torch_compile": "yes"}, "torch_compile"), ({"pack_weights": 1}, "pack_weights")],
)
def test_speed_options_are_validated(engine_api: Any, fields: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        engine_api.EngineOptions(**fields).validate()


def test_timings_say_where_the_time_went(new_engine: Any, make_request: Any, tiny_sd_model: Path) -> None:
    engine = new_engine()
    cold = engine.generate(make_request(tiny_sd_model)).timings
    warm = engine.generate(make_request(tiny_sd_model)).timings
    keys = {"load", "encode_prompt", "before_first_step", "first_step", "denoise", "decode", "total"}
    assert set(cold) == set(warm) == keys
    assert all(value >= 0.0 for value in (*cold.values(), *warm.values()))
    assert cold["load"] > 0.0 and warm["encode_prompt"] == 0.0
