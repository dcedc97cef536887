"""Reference images (issue 31): the reference's cost per generation, and SEQUENTIAL's view disagreement with and
without View 1 as Reference.

cost: one engine, the tiny model with the tiny IP-Adapter (tools/tiny_models.py), interleaved runs after a
warm-up: no reference; the same picture every run (its image embeddings computed once, then reused, as every
view and tile of a run reuses them); a new picture every run (the image encoder runs each time). Per image
medians, the paired ratios to no reference, and how often the encoder ran.

sequential: in a bpy child process (this file with ``--sequential``): the factory cube, Whole Object
SEQUENTIAL (4 views, no control), the bridge's own ``ObjectJob`` with the first-view reference off and on;
for each, ``geometry.latent_sync.view_disagreement`` (issue 29's metric: the mean absolute difference of two
views' colours on the texels both see). Random weights: the figure shows the code path and the metric, not
whether the reference pays on trained weights (the docs say so).

    python bench/reference_images.py [--runs 5] [--quick] [--json]   (make bench: the ``reference`` section)
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # bench/ as a script folder

import timing

PROMPT = "red brick wall, seamless texture"
REPO_MODULE = "lt_bench_reference"


def picture(seed: int, size: int = 48) -> Any:
    import numpy as np

    return np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)


def build(folder: Path) -> tuple[Path, Path]:
    """The tiny SD and its tiny IP-Adapter, built once into ``folder``."""
    tiny_models = timing.import_tiny_models()
    model = folder / "tiny-sd"
    if not (model / "model_index.json").is_file():
        tiny_models.build_tiny_sd(model)
    adapter = folder / "IP-Adapter" / tiny_models.IP_ADAPTER_SD15
    if not adapter.is_file():
        adapter = tiny_models.build_tiny_ip_adapter(folder / "IP-Adapter", model)
    return model, adapter


def measure_cost(model: Path, adapter: Path, *, size: int, steps: int, runs: int, warmup: int = 1) -> dict[str, Any]:
    """Per image: no reference, the same picture every run, a new picture every run; paired ratios.

    Each contender has its own engine (the same model loaded in each), so no run pays for switching the adapter
    on or off: the figures are a run's steady cost. ``denoise`` is the engine's own clock of the steps (the
    adapter's extra attention); ``before_first_step`` holds the image encoder's run where a picture is new.
    """
    engine_api = timing.import_engine()
    common = {"prompt": PROMPT, "model": str(model), "width": size, "height": size, "steps": steps, "seed": 1}
    same = engine_api.ReferenceSpec(image=picture(0), strength=0.6, model=str(adapter))
    counter = iter(range(1, 10**6))
    references = {
        "no reference": lambda: None,
        "same picture": lambda: same,
        "new picture": lambda: engine_api.ReferenceSpec(image=picture(next(counter)), strength=0.6,
                                                        model=str(adapter)),
    }
    engines = {name: engine_api.Engine(engine_api.EngineOptions(device="CPU")) for name in references}
    clocks: dict[str, list[dict[str, float]]] = {name: [] for name in references}

    def contender(name: str) -> Any:
        def go() -> None:
            result = engines[name].generate(engine_api.GenerationRequest(**common, reference=references[name]()))
            clocks[name].append(result.timings)

        return go

    samples = timing.interleave({name: contender(name) for name in references}, runs=runs, warmup=warmup)
    encodes = {name: _encodes(engine) for name, engine in engines.items() if name != "no reference"}
    for engine in engines.values():
        engine.free()

    def median_of(name: str, key: str) -> float:
        return statistics.median(clock[key] for clock in clocks[name][warmup:])

    base = samples["no reference"].times
    return {
        "size": size,
        "steps": steps,
        "runs": runs,
        "per_image_s": {name: s.summary() for name, s in samples.items()},
        "ratio_to_no_reference": {
            name: round(statistics.median(a / b for a, b in zip(s.times, base, strict=True)), 3)
            for name, s in samples.items() if name != "no reference"
        },
        "per_step_ms": {name: round(median_of(name, "denoise") / steps * 1000, 2) for name in references},
        "before_first_step_ms": {name: round(median_of(name, "before_first_step") * 1000, 2) for name in references},
        "encoder_runs": encodes,  # same picture: 1 (then its embeddings are reused); new picture: every run
        "model": "tiny SD + tiny IP-Adapter (tools/tiny_models.py), CPU, one engine per contender",
    }


def _encodes(engine: Any) -> int | None:
    """How many pictures the adapter's image encoder ran on (the rest came from the embeddings kept)."""
    entries = engine.cache.entries("ip_adapter")
    return sum(getattr(adapter, "encodes", 0) for adapter in entries.values()) if entries else None


# -- SEQUENTIAL's view disagreement, in a bpy child process --------------------------------------------


def measure_sequential(model: Path, adapter: Path, *, size: int, steps: int, views: int, out: Path) -> dict[str, Any]:
    """Run this file with ``--sequential`` in a child (it imports bpy); its JSON."""
    command = [sys.executable, __file__, "--sequential", "--model", str(model), "--adapter", str(adapter),
               "--size", str(size), "--steps", str(steps), "--views", str(views), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RuntimeError("bench/reference_images.py --sequential failed:\n" + "\n".join(tail))
    return json.loads(out.read_text())


def sequential_child(model: str, adapter: str, size: int, steps: int, views: int) -> dict[str, Any]:
    import importlib

    extension_loader = _load_extension_loader()
    user_dir = extension_loader.isolate_user_resources(prefix="lt_bench_user_")
    atexit.register(shutil.rmtree, user_dir, ignore_errors=True)
    import bpy

    repo_dir = extension_loader.make_extension_repo(prefix="lt_bench_repo_")
    atexit.register(extension_loader.remove_extension_repo, repo_dir)
    addon = extension_loader.addon_module(REPO_MODULE)
    extension_loader.ensure_repo(repo_dir, REPO_MODULE)
    extension_loader.enable(addon)
    targets = importlib.import_module(f"{addon}.bridge.targets")
    object_target = importlib.import_module(f"{addon}.bridge.object_target")
    object_bake = importlib.import_module(f"{addon}.bridge.object_bake")
    latent_sync = importlib.import_module(f"{addon}.geometry.latent_sync")
    engine_api = importlib.import_module(f"{addon}.engine")

    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    settings = bpy.context.scene.latent_textures
    settings.model, settings.prompt = model, "weathered crate"
    settings.width = settings.height = size
    settings.steps, settings.use_random_seed, settings.seed = steps, False, 7
    settings.target, settings.object_method, settings.object_views, settings.texture_size = (
        "OBJECT", "SEQUENTIAL", views, 256)
    settings.reference_model, settings.reference_strength = adapter, 0.6
    engine = engine_api.get_engine(engine_api.EngineOptions(device="CPU"))
    result: dict[str, Any] = {"views": views, "size": size, "steps": steps, "strength": 0.6}
    for label, first_view in (("without", False), ("with view 1 as reference", True)):
        settings.reference_first_view = first_view
        plan = targets.prepare(bpy.context)
        job = object_target.ObjectJob(plan, previews=False)
        captured = job.capture
        job.request = captured.prepare(job.request)
        _, images = job.sequential(engine, captured)
        bake = object_bake.bake_views(captured.passes, images)
        result[label] = round(latent_sync.view_disagreement(captured.meshes[0].texels, bake), 5)
    engine.free()
    return result


def _load_extension_loader() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("lt_bench_extension_loader_reference",
                                                  timing.REPO_ROOT / "tools" / "extension_loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(folder: Path, *, quick: bool, runs: int) -> dict[str, Any]:
    """The bench section: the cost and the SEQUENTIAL view disagreement, tiny models (``--quick``: fewer runs)."""
    model, adapter = build(folder)
    size, steps = (64, 2) if quick else (128, 4)
    out = measure_cost(model, adapter, size=size, steps=steps, runs=1 if quick else runs, warmup=1)
    with tempfile.TemporaryDirectory(prefix="lt_bench_reference_") as scratch:
        out["sequential_view_disagreement"] = measure_sequential(
            model, adapter, size=64, steps=2 if quick else 4, views=3 if quick else 4,
            out=Path(scratch) / "sequential.json")
    return out


def render(section: dict[str, Any]) -> list[str]:
    """bench/results.md's lines for the section."""
    lines = ["## Reference images (issue 31): the cost per generation, SEQUENTIAL's view 1 as the reference", "",
             f"{section['model']}; {section['size']}² {section['steps']} steps, {section['runs']} interleaved runs "
             "after a warm-up. *Same picture*: its embeddings are computed once and reused (as every view and tile "
             "of a run reuses them); *new picture*: the image encoder runs every time.", "",
             "| contender | s / image | ratio to no reference | ms / step | ms before the first step | "
             "encoder runs | CPU share |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in section["per_image_s"].items():
        ratio = section["ratio_to_no_reference"].get(name, 1.0)
        lines.append(f"| {name} | {row['median']} | {ratio} | {section['per_step_ms'][name]} | "
                     f"{section['before_first_step_ms'][name]} | {section['encoder_runs'].get(name, 0)} | "
                     f"{row['cpu_share']} |")
    sequential = section.get("sequential_view_disagreement")
    if sequential:
        lines += ["", f"SEQUENTIAL, {sequential['views']} views of {sequential['size']}², {sequential['steps']} steps, "
                  f"strength {sequential['strength']}: view disagreement (mean absolute colour difference on the "
                  f"texels two views share) **{sequential['without']}** without, "
                  f"**{sequential['with view 1 as reference']}** with View 1 as Reference (random weights: the code "
                  "path and the metric, not whether it pays on trained ones)."]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)  # the bpy child
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sequential:
        report = sequential_child(args.model, args.adapter, args.size, args.steps, args.views)
        Path(args.out).write_text(json.dumps(report))
        return 0
    with tempfile.TemporaryDirectory(prefix="lt_bench_reference_models_") as folder:
        report = measure(Path(folder), quick=args.quick, runs=args.runs)
    print(json.dumps(report, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
