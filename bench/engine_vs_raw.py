"""Engine vs raw diffusers: ``Engine.generate`` vs calling the diffusers pipeline directly, in one process.

Same model, settings, scheduler, prompt and seed. The runs interleave (engine,
raw, ... with the order rotated every round) after a warm-up, so machine noise
hits all sides alike; medians and paired per-round ratios are reported.

Contenders:

* ``engine`` - ``Engine.generate`` with the default options, what Generate runs: precision
  ``AUTO`` (bf16 on CPUs with native bf16, else fp32), channels_last for the UNet and VAE
  on the CPU, and the cached text embeddings of a repeated prompt;
* ``engine FP32`` - the engine with ``precision="FP32"`` (the portable, bit-exact choice);
* ``raw`` - ``StableDiffusionPipeline.__call__`` as diffusers ships it (fp32);
* ``raw+CL`` - raw with channels_last applied by hand: separates that layout
  choice from the engine's own bookkeeping (bit-identical to ``engine FP32``).

Used by ``bench/run.py`` (section 1) and on its own:

    python bench/engine_vs_raw.py [--model DIR] [--size 64] [--steps 4] [--runs 15] [--threads N] [--json]

Without ``--model`` the tiny SD from tools/tiny_models.py is built in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ as a script folder

import timing

PROMPT = "red brick wall, seamless texture"
CONTENDERS = ("engine", "engine FP32", "raw", "raw+CL")


class Subjects:
    """The engine(s) and raw pipeline(s) on one model, loaded once, reusable across sizes."""

    def __init__(self, model: Path, contenders: tuple[str, ...] = CONTENDERS) -> None:
        import torch
        from diffusers import StableDiffusionPipeline

        engine_api = timing.import_engine()
        self.model = model
        self.engine_api = engine_api
        self.skipped: dict[str, str] = {}
        self.engines: dict[str, Any] = {}
        self.raw: dict[str, Any] = {}
        self.clocks: dict[str, timing.StepClock] = {}
        for name in contenders:
            if name.startswith("engine"):
                precision = name.partition(" ")[2] or "AUTO"
                self.engines[name] = engine_api.Engine(engine_api.EngineOptions(device="CPU", precision=precision))
            else:
                pipe = StableDiffusionPipeline.from_pretrained(
                    model, local_files_only=True, safety_checker=None, requires_safety_checker=False
                )
                pipe.set_progress_bar_config(disable=True)
                if name == "raw+CL":
                    pipe.unet.to(memory_format=torch.channels_last)
                    pipe.vae.to(memory_format=torch.channels_last)
                self.raw[name] = pipe
                self.clocks[name] = clock = timing.StepClock()
                clock.attach(pipe)

    def request(self, size: int, steps: int, guidance: float) -> Any:
        return self.engine_api.GenerationRequest(
            prompt=PROMPT,
            model=str(self.model),
            width=size,
            height=size,
            steps=steps,
            guidance_scale=guidance,
            scheduler="DPM_SOLVER_MULTISTEP",
            seed=0,
        )

    def run_engine(self, name: str, request: Any) -> Any:
        engine = self.engines[name]
        clock = self.clocks.setdefault(name, timing.StepClock())
        clock.start()
        image = engine.generate(request).image[..., :3]
        if engine._model is not None:  # the bench attaches its clock to the loaded pipeline
            for pipe in engine._model.pipelines.values():
                clock.attach(pipe)
        return image

    def run_raw(self, name: str, request: Any) -> Any:
        import torch
        from diffusers import DPMSolverMultistepScheduler

        pipe = self.raw[name]
        self.clocks[name].start()
        # What the engine does per run, by hand: a fresh scheduler and a CPU generator.
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(
            pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=False
        )
        return pipe(
            request.prompt,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            height=request.height,
            width=request.width,
            generator=torch.Generator("cpu").manual_seed(request.seed),
            output_type="np",
        ).images[0]

    def contenders(self, request: Any) -> dict[str, Any]:
        runs: dict[str, Any] = {}
        for name in self.engines:
            runs[name] = lambda name=name: self.run_engine(name, request)
        for name in self.raw:
            runs[name] = lambda name=name: self.run_raw(name, request)
        return runs

    def module(self, name: str, component: str) -> Any:
        """The ``unet``/``vae`` a contender runs (the roofline section reuses them), or None."""
        if name in self.raw:
            return getattr(self.raw[name], component)
        engine = self.engines.get(name)
        model = None if engine is None else engine._model
        return None if model is None else getattr(model.pipelines["TXT2IMG"], component)

    def free(self) -> None:
        for engine in self.engines.values():
            engine.free()
        self.engines.clear()
        self.raw.clear()


def measure(
    subjects: Subjects, *, size: int, steps: int, runs: int, warmup: int = 1, guidance: float = 7.5
) -> dict[str, Any]:
    """One size: interleaved runs of every contender; medians, paired ratios and how far the images differ."""
    import numpy as np

    request = subjects.request(size, steps, guidance)
    contenders = subjects.contenders(request)
    outputs = {name: run() for name, run in contenders.items()}  # also the first warm-up
    samples = timing.interleave(contenders, runs=runs, warmup=max(warmup - 1, 0))
    report: dict[str, Any] = {
        "size": size,
        "steps": steps,
        "guidance_scale": guidance,
        "runs": runs,
        "median_s": {name: round(s.median, 4) for name, s in samples.items()},
        "samples": {name: s.summary() for name, s in samples.items()},
        "skipped": dict(subjects.skipped),
        "before_first_step_beyond_text_encoder_ms": {},
        "text_encoder_ms": {},
    }
    for name in samples:  # the clocks hold the last run of each contender
        clock = subjects.clocks.get(name)
        before = clock.before_first_step() if clock is not None else None
        if before is not None:
            report["before_first_step_beyond_text_encoder_ms"][name] = round(before * 1000, 2)
            report["text_encoder_ms"][name] = round(clock.text_encoder * 1000, 2)
    ratios: dict[str, float] = {}
    for name in samples:
        if name != "raw" and "raw" in samples:
            ratios[f"{name} / raw"] = round(timing.paired_ratio(samples, name, "raw"), 3)
    if "engine FP32" in samples and "raw+CL" in samples:
        ratios["engine FP32 / raw+CL"] = round(timing.paired_ratio(samples, "engine FP32", "raw+CL"), 3)
    report["ratios"] = ratios
    reference = outputs.get("raw")
    if reference is not None:
        report["max_abs_diff_vs_raw"] = {
            name: float(np.abs(image - reference).max()) for name, image in outputs.items() if name != "raw"
        }
    if "engine FP32" in outputs and "raw+CL" in outputs:
        report["engine_equals_raw_channels_last"] = bool(np.array_equal(outputs["engine FP32"], outputs["raw+CL"]))
    report["engine_dtype"] = {name: str(engine.dtype).removeprefix("torch.") for name, engine in subjects.engines.items()}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a diffusers SD-1.x folder (default: build the tiny SD)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(args.model) if args.model else timing.import_tiny_models().build_tiny_sd(Path(scratch) / "tiny")
        subjects = Subjects(model, tuple(args.contenders.split(",")))
        report = measure(subjects, size=args.size, steps=args.steps, runs=args.runs, warmup=args.warmup)
        subjects.free()
    report["model"] = str(args.model) if args.model else "tiny-sd (tools/tiny_models.py)"
    report["torch_threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['model']}  {args.size}x{args.size}  {args.steps} steps  {args.runs} runs  "
          f"{report['torch_threads']} torch threads")
    for name, value in report["median_s"].items():
        print(f"  {name:12s} median {value * 1000:9.1f} ms")
    for name, why in report["skipped"].items():
        print(f"  {name:12s} skipped: {why}")
    for name, value in report["ratios"].items():
        print(f"  {name:22s} = {value:.3f}")
    for name, value in report.get("max_abs_diff_vs_raw", {}).items():
        print(f"  max |{name} - raw| = {value:.2e}")
    if "engine_equals_raw_channels_last" in report:
        print(f"  engine == raw+CL bits : {report['engine_equals_raw_channels_last']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
