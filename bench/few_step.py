"""The few-step path on the CPU (LCM / turbo-sized): a whole Generate, end to end, and where its time goes.

SD-1.5-sized model (what LCM-Dreamshaper and SD-Turbo-class models are), LCM scheduler,
4 steps, guidance 1 (no unconditional pass: batch 1). Every run has a new prompt, so the
text encoder runs each time as it does for an artist who edits the prompt. Contenders,
interleaved: ``engine`` (default Generate, precision Auto), ``engine FP32`` and ``raw``
(diffusers' ``StableDiffusionPipeline`` with ``LCMScheduler``, fp32, out of the box).

Per engine contender: text encoder, set-up before the first step, denoising, VAE decode
and the rest (our overhead: scheduler, pre/post-processing, the float32 RGBA copy),
from ``GenerationResult.timings``; and the dtype each component runs in, so nothing
stays in fp32 by accident under bf16.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

import timing

PROMPTS = ("mossy cobblestones", "rusted steel plate", "oak bark", "cracked mud", "woven wicker", "slate roof")


def measure(model: Path, *, size: int = 256, steps: int = 4, runs: int = 3, warmup: int = 1) -> dict[str, Any]:
    import torch
    from diffusers import LCMScheduler, StableDiffusionPipeline

    engine_api = timing.import_engine()
    engines = {
        "engine": engine_api.Engine(engine_api.EngineOptions(device="CPU")),
        "engine FP32": engine_api.Engine(engine_api.EngineOptions(device="CPU", precision="FP32")),
    }
    raw = StableDiffusionPipeline.from_pretrained(
        model, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    raw.scheduler = LCMScheduler.from_config(raw.scheduler.config)
    raw.set_progress_bar_config(disable=True)
    prompts = itertools.cycle(PROMPTS)
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in engines}

    def run_engine(name: str) -> Any:
        request = engine_api.GenerationRequest(
            prompt=f"{next(prompts)} {len(timings[name])}", model=str(model), width=size, height=size,
            steps=steps, guidance_scale=1.0, scheduler="LCM", seed=0,
        )
        result = engines[name].generate(request)
        timings[name].append(result.timings)
        return result.image

    def run_raw() -> Any:
        return raw(
            f"{next(prompts)} raw", num_inference_steps=steps, guidance_scale=1.0, height=size, width=size,
            generator=torch.Generator("cpu").manual_seed(0), output_type="np",
        ).images[0]

    contenders = {name: (lambda name=name: run_engine(name)) for name in engines}
    contenders["raw"] = run_raw
    for name in engines:
        contenders[name]()  # loads the model; not measured
        timings[name].clear()
    samples = timing.interleave(contenders, runs=runs, warmup=warmup)
    out: dict[str, Any] = {
        "model": "SD-1.5-sized, random weights (LCM / turbo-sized)",
        "size": size,
        "steps": steps,
        "guidance_scale": 1.0,
        "scheduler": "LCM",
        "runs": runs,
        "samples": {name: s.summary() for name, s in samples.items()},
        "time_over_raw": {
            name: round(timing.paired_ratio(samples, name, "raw"), 3) for name in samples if name != "raw"
        },
        "breakdown_s": {},
        "component_dtypes": {},
    }
    for name, engine in engines.items():
        measured = timings[name][-runs:]
        parts = {key: statistics.median(t.get(key, 0.0) for t in measured)
                 for key in ("encode_prompt", "before_first_step", "denoise", "decode", "total")}
        parts["overhead"] = max(parts["total"] - parts["encode_prompt"] - parts["denoise"] - parts["decode"], 0.0)
        out["breakdown_s"][name] = {key: round(value, 4) for key, value in parts.items()}
        pipe = engine._model.pipelines["TXT2IMG"]
        out["component_dtypes"][name] = {
            component: str(next(getattr(pipe, component).parameters()).dtype).removeprefix("torch.")
            for component in ("text_encoder", "unet", "vae")
        }
    for engine in engines.values():
        engine.free()
    del raw
    return out
