"""Compile the Model on the CPU: the first Generate cold (empty cache) and warm (a new process, same cache), and the gain.

Run by ``bench/run.py`` twice, each time in a fresh process as a new Blender session would be:

    python bench/compile_cache.py --model DIR --cache DIR --out FILE.json [--size 256] [--steps 2] [--runs 3]

In the process: an engine with ``torch_compile=True`` and ``compile_cache_dir=--cache`` runs
one Generate (its ``first_step`` holds the compile: from scratch the first time, from the
cache the second), then ``--runs`` rounds interleaved with an engine without compile on
the same model and settings (the gain; the images are compared too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import timing


def measure(model: Path, cache: Path, *, size: int, steps: int, runs: int) -> dict[str, Any]:
    import numpy as np

    engine_api = timing.import_engine()
    cache_had_files = cache.is_dir() and any(cache.rglob("*"))
    compiled = engine_api.Engine(engine_api.EngineOptions(device="CPU", torch_compile=True,
                                                          compile_cache_dir=str(cache)))
    eager = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    request = engine_api.GenerationRequest(
        prompt="red brick wall", model=str(model), width=size, height=size, steps=steps, guidance_scale=7.5,
        scheduler="DPM_SOLVER_MULTISTEP", seed=0,
    )
    start = time.perf_counter()
    first = compiled.generate(request)
    first_s = time.perf_counter() - start
    eager_image = eager.generate(request).image  # loads; the first eager run is not measured
    denoise: dict[str, list[float]] = {"compiled": [], "eager": []}

    def run(name: str, engine: Any) -> None:
        denoise[name].append(engine.generate(request).timings["denoise"])

    samples = timing.interleave(
        {"compiled": lambda: run("compiled", compiled), "eager": lambda: run("eager", eager)}, runs=runs, warmup=1
    )
    steady = compiled.generate(request)
    out = {
        "cache_was_warm": cache_had_files,
        "dtype": str(compiled.dtype).removeprefix("torch."),
        "size": size,
        "steps": steps,
        "first_generate_s": round(first_s, 2),
        "first_generate_timings": first.timings,
        # the compile's own cost: the first step of the first Generate minus a compiled first step later
        "compile_s": round(first.timings["first_step"] - steady.timings["first_step"], 2),
        "samples": {name: s.summary() for name, s in samples.items()},
        "compiled_over_eager": round(timing.paired_ratio(samples, "compiled", "eager"), 3),
        # the UNet step (with CFG: batch 2) and the scheduler step after it, from the denoising loop
        "step_s": {name: round(statistics.median(values[-runs:]) / steps, 4) for name, values in denoise.items()},
        "max_abs_diff_vs_eager": float(np.abs(first.image - eager_image).max()),
        "mean_abs_diff_vs_eager": float(np.abs(first.image - eager_image).mean()),
        "cache_mb": round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20, 1),
    }
    compiled.free()
    eager.free()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(Path(args.model), Path(args.cache), size=args.size, steps=args.steps, runs=args.runs)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
