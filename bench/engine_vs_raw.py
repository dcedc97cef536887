"""Engine overhead: ``Engine.generate`` vs calling the diffusers pipeline directly, in one process.

Same model, settings, scheduler and seed; runs interleave (engine, raw, raw +
channels_last, with the order rotated every round) after a warm-up, so machine
noise hits all sides alike; medians are reported. The engine applies channels_last to the UNet and VAE on CPU,
so "raw+CL" separates that layout choice from the engine's own bookkeeping.

    python bench/engine_vs_raw.py [--model DIR] [--size 64] [--steps 4] [--runs 15] [--threads N] [--json]

Without ``--model`` the tiny SD from tools/tiny_models.py is built in a temp dir.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def _import_engine() -> Any:
    """The repo root as package ``latent_textures`` without running its bpy-importing __init__."""
    if "latent_textures" not in sys.modules:
        spec = importlib.machinery.ModuleSpec("latent_textures", None, is_package=True)
        spec.submodule_search_locations = [str(REPO_ROOT)]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(REPO_ROOT)]
        sys.modules["latent_textures"] = package
    return importlib.import_module("latent_textures.engine")


def _tiny_model(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("tiny_models", REPO_ROOT / "tools" / "tiny_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_tiny_sd(folder / "tiny-sd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a diffusers SD-1.x folder (default: build the tiny SD)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    engine_api = _import_engine()
    scratch = tempfile.TemporaryDirectory()
    model = Path(args.model) if args.model else _tiny_model(Path(scratch.name))

    engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    request = engine_api.GenerationRequest(
        prompt="red brick wall, seamless texture",
        model=str(model),
        width=args.size,
        height=args.size,
        steps=args.steps,
        guidance_scale=7.5,
        scheduler="DPM_SOLVER_MULTISTEP",
        seed=0,
    )

    def raw_pipeline(channels_last: bool) -> Any:
        pipe = StableDiffusionPipeline.from_pretrained(
            model, local_files_only=True, safety_checker=None, requires_safety_checker=False
        )
        pipe.set_progress_bar_config(disable=True)
        if channels_last:
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        return pipe

    raw, raw_cl = raw_pipeline(False), raw_pipeline(True)

    def run_raw(pipe: Any) -> np.ndarray:
        # What the engine does per run, by hand: a fresh scheduler and a CPU generator.
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(
            pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=False
        )
        return pipe(
            request.prompt,
            num_inference_steps=args.steps,
            guidance_scale=7.5,
            height=args.size,
            width=args.size,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
        ).images[0]

    contenders = {
        "engine": lambda: engine.generate(request).image[..., :3],
        "raw": lambda: run_raw(raw),
        "raw+CL": lambda: run_raw(raw_cl),
    }
    outputs = {name: run() for name, run in contenders.items()}
    for _ in range(args.warmup - 1):
        for run in contenders.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(args.runs):
        for name in names[round_ % 3 :] + names[: round_ % 3]:  # rotate who goes first
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)

    median = {name: statistics.median(values) for name, values in times.items()}
    report = {
        "model": "tiny-sd (tools/tiny_models.py)" if not args.model else str(model),
        "size": args.size,
        "steps": args.steps,
        "runs": args.runs,
        "torch_threads": torch.get_num_threads(),
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "ratio_engine_vs_raw": round(median["engine"] / median["raw"], 3),
        "ratio_engine_vs_raw_channels_last": round(median["engine"] / median["raw+CL"], 3),
        "max_abs_diff_engine_vs_raw": float(np.abs(outputs["engine"] - outputs["raw"]).max()),
        "engine_equals_raw_channels_last": bool(np.array_equal(outputs["engine"], outputs["raw+CL"])),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['model']}  {args.size}x{args.size}  {args.steps} steps  {args.runs} runs  "
            f"{report['torch_threads']} torch threads"
        )
        for name, value in median.items():
            print(f"  {name:8s} median {value * 1000:8.1f} ms")
        print(f"  engine / raw          = {report['ratio_engine_vs_raw']:.3f}")
        print(f"  engine / raw+CL       = {report['ratio_engine_vs_raw_channels_last']:.3f}")
        print(f"  max |engine - raw|    = {report['max_abs_diff_engine_vs_raw']:.2e}")
        print(f"  engine == raw+CL bits : {report['engine_equals_raw_channels_last']}")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
