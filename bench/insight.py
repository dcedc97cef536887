"""Insight's cost (issue 13): normal generation with the features present but off, and each one on.

One engine, one model, the same request; the runs interleave (order rotated every round)
and every ratio is a paired per-round ratio against ``off`` (``Engine.generate`` with no
recorder: the ordinary Generate):

* ``recorder, nothing on`` - a recorder that records nothing: the hooks' own cost (~1.0);
* ``off after recording`` - ``off`` again, measured after recorded runs in the same round:
  the attention processors and the scheduler are back as they were (~1.0);
* ``filmstrip`` - plus one VAE decode per step and the contact sheet;
* ``attention`` - plus the attention probabilities beside every cross-attention layer;
* ``filmstrip + attention``.

Also the prompt token count the panel shows: loading a tokenizer once, and a count.

    python bench/insight.py [--model DIR] [--size 128] [--steps 4] [--runs 7] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ as a script folder

import timing

PROMPT = "red brick wall, moss, wet stone tiles"


def measure(
    model: Path, *, size: int, steps: int, runs: int, warmup: int = 1, threads: int | None = None
) -> dict[str, Any]:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(model, size=size, steps=steps, runs=runs, warmup=warmup)
    finally:
        torch.set_num_threads(before)


def _measure(model: Path, *, size: int, steps: int, runs: int, warmup: int) -> dict[str, Any]:
    engine_api = timing.import_engine()
    insight = importlib.import_module(engine_api.__name__ + ".insight")
    engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    request = engine_api.GenerationRequest(
        prompt=PROMPT, model=str(model), width=size, height=size, steps=steps, seed=1, scheduler="EULER"
    )

    def run(**options: bool) -> Any:
        recorder = insight.InsightRecorder(**options) if options else None
        return engine.generate(request, recorder=recorder)

    contenders = {
        "off": run,
        "recorder, nothing on": lambda: engine.generate(request, recorder=insight.InsightRecorder()),
        "filmstrip": lambda: run(filmstrip=True),
        "attention": lambda: run(attention=True),
        "filmstrip + attention": lambda: run(filmstrip=True, attention=True),
        "off after recording": run,
    }
    run()  # the model load is nobody's cost
    samples = timing.interleave(contenders, runs=runs, warmup=warmup)
    # Rotation puts "off after recording" after some recorded runs in most rounds (all but the first).
    identical = bool((run().image == run(filmstrip=True, attention=True).image).all())
    engine.free()
    out: dict[str, Any] = {
        "model": str(model.name),
        "size": size,
        "steps": steps,
        "threads": timing.torch_threads(),
        "times_s": {name: s.summary() for name, s in samples.items()},
        "ratios_vs_off": {
            name: round(timing.paired_ratio(samples, name, "off"), 3) for name in samples if name != "off"
        },
        # CPU seconds (wall x CPU share x threads) per run, paired the same way: steadier than wall time
        # when other processes take the cores (CPU share well below 1).
        "cpu_ratios_vs_off": {
            name: round(_cpu_ratio(samples[name], samples["off"]), 3) for name in samples if name != "off"
        },
        "pixels_identical_with_recording": identical,
    }
    out["tokens"] = _tokens(model, engine_api)
    return out


def _cpu_ratio(subject: timing.Samples, off: timing.Samples) -> float:
    import statistics

    cpu = [[t * c for t, c in zip(s.times, s.cpu_share, strict=True)] for s in (subject, off)]
    return statistics.median(a / b for a, b in zip(*cpu, strict=True))


def _tokens(model: Path, engine_api: Any) -> dict[str, Any]:
    tokens = importlib.import_module(engine_api.__name__ + ".tokens")
    folder = model / "tokenizer"
    start = time.perf_counter()
    tokens.count_tokens(folder, PROMPT)  # loads the tokenizer (cached per folder)
    first = time.perf_counter() - start
    runs = 200
    start = time.perf_counter()
    for i in range(runs):
        tokens.count_tokens(folder, f"{PROMPT} {i}")
    return {"first_count_ms": round(first * 1000, 2), "count_ms": round((time.perf_counter() - start) / runs * 1000, 3)}


def render(section: dict[str, Any]) -> list[str]:
    lines = [
        "## Insight (issue 13): features present but off, and each one on",
        "",
        f"{section['model']}, {section['size']}x{section['size']}, {section['steps']} steps, "
        f"{section['threads']} thread(s); paired ratios vs `off` (the ordinary Generate).",
        "",
        "| contender | median s | CPU share | wall time vs off | CPU time vs off |",
        "|---|---|---|---|---|",
    ]
    for name, times in section["times_s"].items():
        ratio = section["ratios_vs_off"].get(name, 1.0)
        cpu = section.get("cpu_ratios_vs_off", {}).get(name, 1.0)
        lines.append(f"| {name} | {times['median']} | {times['cpu_share']} | {ratio} | {cpu} |")
    tokens = section["tokens"]
    lines += [
        "",
        f"Pixels identical with recording on: {section['pixels_identical_with_recording']}. "
        f"Prompt token count (panel): first count with the tokenizer load {tokens['first_count_ms']} ms, "
        f"then {tokens['count_ms']} ms per count (tiny tokenizer vocabulary).",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a diffusers folder (default: the tiny SD, built in a temp folder)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is steadier on a busy machine)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the markdown table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lt_bench_insight_") as scratch:
        model = Path(args.model) if args.model else timing.import_tiny_models().build_tiny_sd(Path(scratch) / "tiny")
        section = measure(model, size=args.size, steps=args.steps, runs=args.runs, threads=args.threads)
    print(json.dumps(section, indent=1) if args.json else "\n".join(render(section)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
