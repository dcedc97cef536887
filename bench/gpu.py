"""Section 5 of the benchmark: raw diffusers vs the engine on a CUDA GPU, each speed option on and off.

Runs only where ``torch.cuda.is_available()``; elsewhere ``bench/run.py`` reports the
section as skipped (with the reason), never with made-up figures.

Models: SD-1.5-sized at 512x512 and SDXL-sized at 1024x1024 (random weights, the real
architectures: ``sized_models.py``), saved in fp16, 20 steps, guidance 7.5, DPM++ 2M,
fp16. Contenders, each interleaved with raw diffusers round by round:

* ``raw`` - ``AutoPipelineForText2Image`` in fp16 on the GPU, SDPA attention (diffusers' default);
* ``raw classic attention`` - raw with ``AttnProcessor`` (no fused SDPA): what SDPA is worth;
* ``raw +channels_last``, ``raw +fused QKV`` (diffusers' ``fuse_qkv_projections``),
  ``raw +compile`` (``torch.compile`` of the UNet and the VAE decoder, default mode),
  ``raw +compile max-autotune`` (max-autotune with CUDA graphs), and ``raw all`` (channels_last
  + fused QKV + max-autotune): each option of the published fast stacks on its own and together;
* ``engine`` - ``Engine`` with fp16 and its defaults (channels_last off on GPUs, fp16 VAE with
  the fp32 fallback, no compile);
* ``engine +channels_last``, ``engine VAE fp32``, ``engine BF16`` (cards with native bf16),
  ``engine +torch.compile`` (its compile time is reported separately).

Per contender: iterations per second of the denoising loop (from per-step timestamps,
first step excluded, the GPU synchronised at each), seconds per image, and peak GPU
memory. ``dry_run=True`` runs the same code on the CPU with the tiny model (fp32, 64x64,
3 steps) so the section can be exercised without a GPU; its figures mean nothing.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

import timing

PROMPT = "weathered red brick wall, seamless texture"


def skip_reason() -> str | None:
    """Why the GPU section cannot run here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        build = "CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build"
        return f"no CUDA device (torch {torch.__version__}, {build})"
    return None


class _Steps:
    """Per-step timestamps (GPU synchronised), for iterations per second without the first step."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.times: list[float] = []

    def mark(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())

    def its(self) -> float | None:
        if len(self.times) < 3:
            return None
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def _scheduler(pipe: Any) -> Any:
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=False
    )


# How the section compiles: torch.compile, or (dry run) its eager backend - the same graph capture, no compiler.
_COMPILE: dict[str, Any] = {"eager_backend": False}


def _compile(module: Any, mode: str | None) -> Any:
    import torch

    if _COMPILE["eager_backend"]:
        return torch.compile(module, backend="eager")
    return torch.compile(module, mode=mode)


class _Raw:
    """Bare diffusers, with the GPU speed options applied by hand (``raw`` has none)."""

    def __init__(
        self,
        folder: Path,
        device: Any,
        dtype: Any,
        classic_attention: bool = False,
        channels_last: bool = False,
        fuse_qkv: bool = False,
        compile_mode: str | None = None,
    ) -> None:
        import torch
        from diffusers import AutoPipelineForText2Image

        self.pipe = AutoPipelineForText2Image.from_pretrained(folder, dtype=dtype, local_files_only=True)
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device
        self.classic_attention = classic_attention
        if channels_last:
            self.pipe.unet.to(memory_format=torch.channels_last)
            self.pipe.vae.to(memory_format=torch.channels_last)
        if fuse_qkv:
            self.pipe.fuse_qkv_projections()  # sets its own fused attention processors
        if compile_mode is not None:
            self.pipe.unet = _compile(self.pipe.unet, None if compile_mode == "default" else compile_mode)
            self.pipe.vae.decode = _compile(self.pipe.vae.decode, None if compile_mode == "default" else compile_mode)

    def run(self, size: int, steps: int, seed: int = 0) -> dict[str, Any]:
        import torch
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        pipe = self.pipe
        pipe.scheduler = _scheduler(pipe)
        if self.classic_attention:
            pipe.unet.set_attn_processor(AttnProcessor())
        elif not getattr(pipe, "fusing_unet", False):  # fused QKV keeps its own processors
            pipe.unet.set_attn_processor(AttnProcessor2_0())
        clock = _Steps(self.device)

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            clock.mark()
            return tensors

        start = time.perf_counter()
        pipe(
            PROMPT,
            num_inference_steps=steps,
            guidance_scale=7.5,
            height=size,
            width=size,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        return {"seconds": time.perf_counter() - start, "its": clock.its()}


class _Engine:
    def __init__(self, folder: Path, device: Any, **options: Any) -> None:
        engine_api = timing.import_engine()
        self.api = engine_api
        self.folder = folder
        self.device = device
        self.engine = engine_api.Engine(engine_api.EngineOptions(device=device.type.upper(), **options))

    def run(self, size: int, steps: int, seed: int = 0) -> dict[str, Any]:
        clock = _Steps(self.device)
        request = self.api.GenerationRequest(
            prompt=PROMPT, model=str(self.folder), width=size, height=size, steps=steps, seed=seed,
            guidance_scale=7.5, scheduler="DPM_SOLVER_MULTISTEP",
        )
        start = time.perf_counter()
        result = self.engine.generate(request, on_progress=lambda event: clock.mark())
        return {"seconds": time.perf_counter() - start, "its": clock.its(), "timings": result.timings}

    def free(self) -> None:
        self.engine.free()


def _peak_memory(device: Any) -> Any:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _reset_peak(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _contenders(dtype_name: str, bf16: bool, compile_: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, kind, options) in the order they are measured against raw."""
    rows = [
        ("raw classic attention", "raw", {"classic_attention": True}),
        ("raw +channels_last", "raw", {"channels_last": True}),
        ("raw +fused QKV", "raw", {"fuse_qkv": True}),
        ("engine", "engine", {"precision": dtype_name}),
        ("engine +channels_last", "engine", {"precision": dtype_name, "channels_last": "ON"}),
        ("engine VAE fp32", "engine", {"precision": dtype_name, "vae_precision": "FP32"}),
    ]
    if bf16:
        rows.append(("engine BF16", "engine", {"precision": "BF16"}))
    if compile_:
        rows += [
            ("raw +compile", "raw", {"compile_mode": "default"}),
            ("raw +compile max-autotune", "raw", {"compile_mode": "max-autotune"}),
            ("raw all", "raw", {"channels_last": True, "fuse_qkv": True, "compile_mode": "max-autotune"}),
            ("engine +torch.compile", "engine", {"precision": dtype_name, "torch_compile": True}),
        ]
    return rows


def _measure_model(
    label: str, folder: Path, *, size: int, steps: int, runs: int, device: Any, dtype: Any, dtype_name: str,
    bf16: bool, compile_: bool, log: Any,
) -> dict[str, Any]:
    raw = _Raw(folder, device, dtype)
    raw.run(size, steps)  # warm-up
    out: dict[str, Any] = {"size": size, "steps": steps, "runs": runs, "contenders": {}}
    raw_rows: list[dict[str, Any]] = []
    for name, kind, options in _contenders(dtype_name, bf16, compile_):
        log(f"  gpu: {label} {name}")
        subject: Any = None
        try:
            subject = _Raw(folder, device, dtype, **options) if kind == "raw" else _Engine(folder, device, **options)
            _reset_peak(device)
            start = time.perf_counter()
            cold = subject.run(size, steps)  # warm-up; with torch.compile this one compiles
            cold_seconds = time.perf_counter() - start
            rows: list[dict[str, Any]] = []
            pairs: list[float] = []
            for round_ in range(runs):
                order = [("raw", raw), (name, subject)]
                results = {}
                for who, contender in order if round_ % 2 == 0 else order[::-1]:
                    results[who] = contender.run(size, steps)
                raw_rows.append(results["raw"])
                rows.append(results[name])
                pairs.append(results[name]["seconds"] / results["raw"]["seconds"])
        except Exception as error:  # noqa: BLE001 - one contender failing (no compiler, ...) must not lose the rest
            log(f"  gpu: {label} {name} failed: {type(error).__name__}: {error}")
            out["contenders"][name] = {"error": f"{type(error).__name__}: {str(error)[:300]}", "options": options}
            if subject is not None and hasattr(subject, "free"):
                subject.free()
            subject = None
            gc.collect()
            continue
        its = [r["its"] for r in rows if r["its"] is not None]
        entry: dict[str, Any] = {
            "seconds_per_image": round(statistics.median(r["seconds"] for r in rows), 4),
            "its": round(statistics.median(its), 3) if its else None,
            "time_vs_raw": round(statistics.median(pairs), 3),
            "peak_memory_gb": _peak_memory(device),
            "options": options,
        }
        if options.get("compile_mode"):
            entry["cold_seconds"] = round(cold_seconds, 2)  # the first image: compiles the UNet and VAE
        if "timings" in cold:
            entry["cold_first_step_s"] = cold["timings"].get("first_step")
            entry["cold_seconds"] = round(cold["seconds"], 3)
            if options.get("torch_compile"):
                steady = statistics.median(r["timings"].get("first_step", 0.0) for r in rows)
                entry["compile_s"] = round(cold["timings"].get("first_step", 0.0) - steady, 2)
        out["contenders"][name] = entry
        if hasattr(subject, "free"):
            subject.free()
        del subject
        gc.collect()
        if device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
    its = [r["its"] for r in raw_rows if r["its"] is not None]
    if not raw_rows:
        out["contenders"]["raw"] = {"error": "no contender ran"}
        return out
    out["contenders"]["raw"] = {
        "seconds_per_image": round(statistics.median(r["seconds"] for r in raw_rows), 4),
        "its": round(statistics.median(its), 3) if its else None,
        "time_vs_raw": 1.0,
    }
    del raw
    gc.collect()
    return out


def run(*, scratch: Path, quick: bool, runs: int, compile_: bool, dry_run: bool = False, log: Any = print) -> dict:
    """The GPU section; ``dry_run`` exercises it on the CPU with the tiny model (figures meaningless)."""
    import sized_models
    import torch

    if dry_run:
        import functools

        if compile_:  # the eager backend: the same graph capture in seconds, without a C++ compiler
            torch.compile = functools.partial(torch.compile, backend="eager")
            _COMPILE["eager_backend"] = True
        device, dtype, dtype_name = torch.device("cpu"), torch.float32, "FP32"
        tiny = timing.import_tiny_models()
        plan = [("tiny SD (dry run)", lambda: tiny.build_tiny_sd(scratch / "gpu-tiny"), 64, 3)]
        bf16 = False
    else:
        device, dtype, dtype_name = torch.device("cuda"), torch.float16, "FP16"
        steps = 4 if quick else 20
        plan = [
            ("SD-1.5-sized", lambda: sized_models.build_sd15_sized(scratch / "gpu-sd15", dtype=dtype, device=device),
             512, steps),
        ]
        if not quick:
            plan.append((
                "SDXL-sized",
                lambda: sized_models.build_sdxl_sized(scratch / "gpu-sdxl", dtype=dtype, device=device),
                1024,
                steps,
            ))
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)",
        "dtype": dtype_name,
        "dry_run": dry_run,
        "models": {},
    }
    for label, build, size, steps in plan:
        log(f"  gpu: building {label}")
        folder = build()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        result["models"][label] = _measure_model(
            label, folder, size=size, steps=steps, runs=runs, device=device, dtype=dtype, dtype_name=dtype_name,
            bf16=bf16, compile_=compile_, log=log,
        )
    return result
