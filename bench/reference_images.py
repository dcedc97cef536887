"""Reference images (issue 31) in ``make bench``: the reference's cost per generation (``reference_cost.py``,
the engine's side) and SEQUENTIAL's view disagreement with and without View 1 as Reference (this file).

sequential: in a bpy child process (this file with ``--sequential``): the factory cube, Whole Object
SEQUENTIAL (no control), the bridge's own ``ObjectJob`` with the first-view reference off and on; for each,
``geometry.latent_sync.view_disagreement`` (issue 29's metric: the mean absolute difference of two views'
colours on the texels both see). Random weights: the figure shows the code path and the metric, not whether
the reference pays on trained weights (the docs say so).

    python bench/reference_images.py [--runs 5] [--quick] [--json]   (make bench: the ``reference`` section)
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # bench/ as a script folder

import reference_cost
import timing

REPO_MODULE = "lt_bench_reference"


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
    out = {"cost": reference_cost.measure(model, adapter, size=size, steps=steps, runs=1 if quick else runs),
           "model": "tiny SD + tiny IP-Adapter (tools/tiny_models.py), CPU"}
    with tempfile.TemporaryDirectory(prefix="lt_bench_reference_") as scratch:
        out["sequential_view_disagreement"] = measure_sequential(
            model, adapter, size=64, steps=2 if quick else 4, views=3 if quick else 4,
            out=Path(scratch) / "sequential.json")
    return out


def render(section: dict[str, Any]) -> list[str]:
    """bench/results.md's lines for the section."""
    cost = section["cost"]
    lines = ["## Reference images (issue 31): the cost per generation, SEQUENTIAL's view 1 as the reference", "",
             f"{section['model']}; {cost['size']}² {cost['steps']} steps, {cost['runs']} interleaved runs "
             "(bench/reference_cost.py). *reference*: the adapter loaded and the picture's embeddings reused (a run's "
             "views and tiles, the next Generate with the same picture); *new picture*: the image encoder runs "
             "again.", "",
             "| contender | s / image | ms / step | ratio per image | ratio per step | ms of reference work "
             "before the first step | CPU share |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, seconds in cost["per_image_s"].items():
        lines.append(f"| {name} | {seconds} | {cost['per_step_ms'].get(name, '')} | "
                     f"{cost['ratio_per_image'].get(name, 1.0)} | {cost['ratio_per_step'].get(name, 1.0)} | "
                     f"{cost['reference_before_first_step_ms'].get(name, '')} | {cost['cpu_share'].get(name, '')} |")
    lines += ["", f"Switching the reference back on (the adapter into the UNet again): "
              f"{cost['switch_back_on_ms']} ms."]
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
