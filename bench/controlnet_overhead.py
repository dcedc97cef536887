"""ControlNet overhead: the time per denoising step with a ControlNet vs the plain pipeline, in one process.

One engine, one model: ``Engine.generate`` without control and with a DEPTH ControlNet
(``StableDiffusionControlNetPipeline`` built with ``from_pipe`` on the same components),
same prompt, size, steps and seed, runs interleaved after a warm-up. The per-step time is
the engine's own ``timings["denoise"] / steps`` (UNet + ControlNet + scheduler, no VAE, no
text encoder); the overhead is the paired per-round ratio control / plain.

Models: the tiny SD with a tiny ControlNet (tools/tiny_models.py), and the SD-1.5-sized
random-weight model (bench/sized_models.py) with a ControlNet of the real SD-1.5 ControlNet's
architecture (``ControlNetModel.from_unet`` of that UNet: 361 M parameters).

    python bench/controlnet_overhead.py [--model DIR] [--controlnet DIR] [--size 64] [--steps 4] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ as a script folder

import timing

PROMPT = "red brick wall, seamless texture"


REAL_EMBEDDING_CHANNELS = (16, 32, 96, 256)  # lllyasviel/control_v11f1p_sd15_depth config.json


def build_controlnet(folder: Path, model: Path, *, real_size: bool = False) -> Path:
    """A ControlNet with the architecture ``from_unet`` gives for ``model``'s UNet (random output convs), saved.

    ``real_size``: the real SD ControlNets' control-image encoder (else the tiny one)."""
    if (folder / "config.json").is_file():
        return folder
    tiny_models = timing.import_tiny_models()
    if real_size:
        return tiny_models.build_tiny_controlnet(folder, model, embedding_channels=REAL_EMBEDDING_CHANNELS)
    return tiny_models.build_tiny_controlnet(folder, model)


def depth_image(size: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.sqrt((y - size / 2) ** 2 + (x - size / 2) ** 2) / (0.35 * size)
    value = np.clip(1.0 - r**2, 0.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(np.repeat(value[..., None], 3, axis=-1))


def measure(model: Path, controlnet: Path, *, size: int, steps: int, runs: int, warmup: int = 1) -> dict[str, Any]:
    """Interleaved runs of the plain and the controlled request on one engine; per-step medians and ratio."""
    engine_api = timing.import_engine()
    engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    common = {"prompt": PROMPT, "model": str(model), "width": size, "height": size, "steps": steps, "seed": 1}
    requests = {
        "plain": engine_api.GenerationRequest(**common),
        "controlnet": engine_api.GenerationRequest(
            **common, control="DEPTH", control_image=depth_image(size), control_model=str(controlnet)
        ),
    }
    per_step: dict[str, list[float]] = {name: [] for name in requests}

    def contender(name: str) -> Any:
        def run() -> None:
            result = engine.generate(requests[name])
            per_step[name].append(result.timings["denoise"] / steps)

        return run

    samples = timing.interleave({name: contender(name) for name in requests}, runs=runs, warmup=warmup)
    for name in per_step:
        per_step[name] = per_step[name][warmup:]  # the warm-up runs are not measured
    pairs = zip(per_step["controlnet"], per_step["plain"], strict=True)
    controlnet_params = sum(p.numel() for p in next(iter(engine.cache.entries("controlnet").values())).parameters())
    unet_params = sum(p.numel() for p in engine._model.base.unet.parameters())
    engine.free()
    return {
        "size": size,
        "steps": steps,
        "runs": runs,
        "per_step_ms": {name: round(statistics.median(v) * 1000, 2) for name, v in per_step.items()},
        "per_image_s": {name: round(s.median, 4) for name, s in samples.items()},
        "ratio_per_step": round(statistics.median(a / b for a, b in pairs), 3),
        "cpu_share": {name: s.summary()["cpu_share"] for name, s in samples.items()},
        "unet_params_m": round(unet_params / 1e6, 1),
        "controlnet_params_m": round(controlnet_params / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a diffusers SD-1.x folder (default: build the tiny SD)")
    parser.add_argument("--controlnet", help="its ControlNet folder (default: build one from the model's UNet)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(args.model) if args.model else timing.import_tiny_models().build_tiny_sd(Path(scratch) / "tiny")
        controlnet = (
            Path(args.controlnet)
            if args.controlnet
            else build_controlnet(Path(scratch) / "cn", model, real_size=args.model is not None)
        )
        report = measure(model, controlnet, size=args.size, steps=args.steps, runs=args.runs, warmup=args.warmup)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{model}  {args.size}x{args.size}  {args.steps} steps  {args.runs} runs")
    for name, value in report["per_step_ms"].items():
        print(f"  {name:10s} {value:9.1f} ms per step")
    print(f"  controlnet / plain per step = {report['ratio_per_step']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
