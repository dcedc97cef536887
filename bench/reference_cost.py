"""The reference image's cost (issue 31): a Generate with an IP-Adapter reference vs the plain Generate.

Paired ratios from runs interleaved in one process (order rotated every round), the same request and seed:

* ``plain`` - one engine, no reference;
* ``reference`` - a second engine with the same model, the adapter kept loaded and the picture's embedding
  cached (the steady state of a run of views or tiles, or the next Generate with the same picture);
* ``new picture`` - that engine with another picture each run: the image encoder runs once more.

Reported: the denoising time per step (``timings["denoise"] / steps``: the IP-Adapter's extra key/value
projections and attention to its 4 image tokens) and per image, as paired ratios to ``plain``; what
``timings["reference"]`` says each case cost before the first step; the first reference run of a fresh
engine (the encoder read, the adapter into the UNet, the picture encoded); and switching reference on and
off on one engine (the adapter out of the UNet and back in from its file, the encoder kept).

Models: the tiny SD and tiny adapter (tools/tiny_models.py), or ``--model`` with ``--adapter`` (an
IP-Adapter file with its ``image_encoder`` folder beside it, e.g. h94/IP-Adapter's ``models/ip-adapter_sd15``).

    python bench/reference_cost.py [--model DIR --adapter FILE] [--size 64] [--steps 4] [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ as a script folder

import timing

PROMPT = "red brick wall, seamless texture"


def picture(seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).random((224, 224, 3)).astype(np.float32)


def measure(model: Path, adapter: Path, *, size: int, steps: int, runs: int, warmup: int = 1) -> dict[str, Any]:
    """Interleaved plain / reference / new-picture runs; per-step and per-image medians and paired ratios."""
    engine_api = timing.import_engine()
    common = {"prompt": PROMPT, "model": str(model), "width": size, "height": size, "steps": steps, "seed": 1}
    plain_engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    reference_engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))

    def with_reference(seed: int) -> Any:
        return engine_api.GenerationRequest(**common, reference=engine_api.ReferenceSpec(picture(seed), 0.6,
                                                                                         str(adapter)))

    started = time.perf_counter()
    first = reference_engine.generate(with_reference(0))
    first_run = {"total_s": round(time.perf_counter() - started, 4),
                 "reference_s": round(first.timings["reference"], 4), "load_s": round(first.timings["load"], 4)}
    per_step: dict[str, list[float]] = {"plain": [], "reference": [], "new picture": []}
    before_steps: dict[str, list[float]] = {"reference": [], "new picture": []}
    counter = iter(range(1, 1_000_000))

    def contender(name: str) -> Any:
        def run() -> None:
            if name == "plain":
                result = plain_engine.generate(engine_api.GenerationRequest(**common))
            else:
                result = reference_engine.generate(with_reference(0 if name == "reference" else next(counter)))
                before_steps[name].append(result.timings["reference"])
            per_step[name].append(result.timings["denoise"] / steps)

        return run

    samples = timing.interleave({name: contender(name) for name in per_step}, runs=runs, warmup=warmup)
    for values in (*per_step.values(), *before_steps.values()):
        del values[:warmup]  # the warm-up runs are not measured
    switching: list[float] = []
    for seed in range(max(2, runs // 2)):  # on one engine: plain, then the reference again (adapter back in)
        reference_engine.generate(engine_api.GenerationRequest(**common))
        switching.append(reference_engine.generate(with_reference(0)).timings["reference"])
    step_pairs = {name: [a / b for a, b in zip(per_step[name], per_step["plain"], strict=True)]
                  for name in ("reference", "new picture")}
    plain_engine.free()
    reference_engine.free()
    return {
        "size": size,
        "steps": steps,
        "runs": runs,
        "per_step_ms": {name: round(statistics.median(v) * 1000, 3) for name, v in per_step.items()},
        "per_image_s": {name: round(s.median, 4) for name, s in samples.items()},
        "ratio_per_step": {name: round(statistics.median(v), 3) for name, v in step_pairs.items()},
        "ratio_per_image": {name: round(timing.paired_ratio(samples, name, "plain"), 3)
                            for name in ("reference", "new picture")},
        "reference_before_first_step_ms": {name: round(statistics.median(v) * 1000, 3)
                                           for name, v in before_steps.items()},
        "switch_back_on_ms": round(statistics.median(switching) * 1000, 3),
        "first_reference_run": first_run,
        "cpu_share": {name: s.summary()["cpu_share"] for name, s in samples.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a diffusers SD-1.x folder (default: build the tiny SD)")
    parser.add_argument("--adapter", help="its IP-Adapter file, image_encoder beside it (default: a tiny one)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)
    if bool(args.model) != bool(args.adapter):
        parser.error("--model and --adapter go together (the adapter must fit the model)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        tiny = timing.import_tiny_models()
        model = Path(args.model) if args.model else tiny.build_tiny_sd(Path(scratch) / "tiny")
        adapter = Path(args.adapter) if args.adapter else tiny.build_tiny_ip_adapter(Path(scratch) / "ip", model)
        report = measure(model, adapter, size=args.size, steps=args.steps, runs=args.runs, warmup=args.warmup)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{model}  {args.size}x{args.size}  {args.steps} steps  {args.runs} runs")
    for name, value in report["per_step_ms"].items():
        print(f"  {name:12s} {value:9.2f} ms per step  {report['per_image_s'][name]:8.3f} s per image")
    for name in ("reference", "new picture"):
        print(f"  {name:12s} / plain: per step {report['ratio_per_step'][name]:.3f}, per image "
              f"{report['ratio_per_image'][name]:.3f}; before the first step "
              f"{report['reference_before_first_step_ms'][name]:.1f} ms")
    print(f"  reference back on after a plain run: {report['switch_back_on_ms']:.1f} ms")
    print(f"  first reference run of a fresh engine: {report['first_reference_run']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
