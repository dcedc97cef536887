"""Device and precision resolution (GPUs simulated by patching torch's queries), the seed generator, OOM."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest


@pytest.fixture(scope="module")
def devices(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".devices")


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pretend a CUDA card is present; ``fake_gpu(name, bf16)`` sets what it reports."""
    import torch

    def install(name: str = "NVIDIA GeForce RTX 4090", bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)

    return install


def test_auto_on_this_machine_is_the_cpu_in_bf16_where_it_has_native_bf16(devices: Any) -> None:
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    device = devices.resolve_device("AUTO")
    native = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu.get_capabilities().get("amx_bf16"))
    capped = importlib.import_module(devices.__package__ + ".files").ONEDNN_ISAS_WITHOUT_BF16
    native = native and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() not in capped
    assert device.type == "cpu" and devices.cpu_has_native_bf16() == native
    assert devices.resolve_dtype("AUTO", device) == (torch.bfloat16 if native else torch.float32)


@pytest.mark.parametrize("isa", ["AVX2", "avx512_core", "AVX512_CORE_VNNI"])
def test_onednn_capped_below_bf16_is_not_native_bf16(devices: Any, monkeypatch: pytest.MonkeyPatch, isa: str) -> None:
    """``ONEDNN_MAX_CPU_ISA`` below AVX512_CORE_BF16 makes oneDNN emulate bf16: Precision Auto is then fp32."""
    import torch

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert not devices.cpu_has_native_bf16()
    assert devices.resolve_dtype("AUTO", torch.device("cpu")) == torch.float32
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # bf16 allowed, AMX not: the CPU's flags decide
    assert devices.cpu_has_native_bf16() == bool(torch.cpu._is_avx512_bf16_supported())


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"avx2": True, "avx512_f": True, "avx512_bf16": True}, "bfloat16"),  # Zen 4/5, Cooper Lake
        ({"avx2": True, "avx512_f": True, "amx_bf16": True, "amx_tile": True}, "bfloat16"),  # AMX only
        ({"avx2": True, "avx512_f": True, "avx512_bf16": False}, "float32"),  # AVX-512 alone emulates bf16
        ({"avx2": True, "fma3": True}, "float32"),  # the usual desktop CPU
        ({}, "float32"),  # a torch that cannot say: the safe choice
    ],
)
def test_auto_precision_on_the_cpu_follows_its_feature_flags(
    devices: Any, monkeypatch: pytest.MonkeyPatch, features: dict[str, bool], expected: str
) -> None:
    import torch

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: dict(features, cpu_name="any", num_logical_cores=8))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPU's flags alone, also in an emulated run
    assert devices.dtype_name(devices.resolve_dtype("AUTO", torch.device("cpu"))) == expected
    assert devices.resolve_dtype("FP32", torch.device("cpu")) == torch.float32  # one click away, everywhere


@pytest.mark.parametrize(
    ("name", "bf16", "expected"),
    [
        ("NVIDIA GeForce RTX 4090", True, "bfloat16"),
        ("Tesla T4", False, "float16"),
        ("NVIDIA GeForce GTX 1660 SUPER", False, "float32"),
    ],
)
def test_auto_precision_on_cuda(devices: Any, fake_gpu: Any, name: str, bf16: bool, expected: str) -> None:
    fake_gpu(name, bf16)
    device = devices.resolve_device("AUTO")
    assert device.type == "cuda"
    assert devices.dtype_name(devices.resolve_dtype("AUTO", device)) == expected


def test_mps_is_fp16_and_explicit_precision_wins(devices: Any) -> None:
    import torch

    assert devices.resolve_dtype("AUTO", torch.device("mps")) == torch.float16
    assert devices.resolve_dtype("FP32", torch.device("mps")) == torch.float32
    assert devices.resolve_dtype("BF16", torch.device("cpu")) == torch.bfloat16
    assert devices.resolve_dtype("FP16", torch.device("cpu")) == torch.float16


def test_unavailable_device_is_a_clear_error(engine_api: Any, devices: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(engine_api.EngineError, match="CUDA was requested"):
        devices.resolve_device("CUDA")
    with pytest.raises(engine_api.EngineError, match="MPS"):
        engine_api.Engine(engine_api.EngineOptions(device="MPS"))
    assert devices.resolve_device("AUTO").type == "cpu"


def test_the_seed_generator_lives_on_the_cpu(devices: Any) -> None:
    import torch

    generator = devices.seed_generator(42)
    assert generator.device.type == "cpu"
    assert torch.equal(torch.randn(4, generator=generator), torch.randn(4, generator=devices.seed_generator(42)))


@pytest.mark.parametrize(
    ("error", "is_oom"),
    [
        ("torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 MiB')", True),
        ("RuntimeError('MPS backend out of memory (MPS allocated: 8.00 GB)')", True),
        ("RuntimeError('[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory')", True),
        ("RuntimeError(\"[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
         "you tried to allocate 70368744177664 bytes. Error code 12 (Cannot allocate memory)\")", True),
        ("RuntimeError('mat1 and mat2 shapes cannot be multiplied')", False),
        ("ValueError('out of memory')", False),
    ],
)
def test_out_of_memory_detection(engine_api: Any, devices: Any, error: str, is_oom: bool) -> None:
    import torch

    exception = eval(error, {"torch": torch})  # fixed test strings
    assert devices.is_oom(exception) == is_oom
    expected = engine_api.OutOfMemoryError if is_oom else type(exception)
    with pytest.raises(expected), devices.oom_as_engine_error(torch.device("cpu")):
        raise exception
