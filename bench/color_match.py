"""Color Match between Whole Object views (issue 31 item 4): how much the views disagree on the surface they share,
GRID and SEQUENTIAL, with Color Match None, Reinhard and Histogram - the same seeds, in one bpy process.

The metric is the consistency metric (``geometry.latent_sync.view_disagreement``: each kept view gathered alone
into the cube's texels, the mean absolute difference of two views' colours where both see the surface, over every
pair and channel; 0..1 display sRGB). The time of each run is taken too, and the matching alone is timed against
the bake it precedes at full size (``cost``: numpy only, the UV sphere and views of ``bench/object_bake.py``, CPU
time of interleaved rounds), so its cost is a ratio measured in this process. The tiny model's weights are random: its views are noise with their own palettes, so the figures
show what the matching does to such views, not what a trained model's views gain.

    python bench/color_match.py --out result.json --tiny-model DIR --controlnet DIR [--quick]

Runs inside its own process (``bench/run.py``'s ``color_match`` section starts it) with the add-on loaded the way
Blender loads an extension (``tools/extension_loader.py``).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.util
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_MODULE = "lt_bench_color"
MATCHES = ("NONE", "REINHARD", "HISTOGRAM")
METHODS = ("GRID", "SEQUENTIAL")


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _disagreement(bpy: Any, addon: str, settings: Any, views: list) -> float:
    object_bake = importlib.import_module(f"{addon}.bridge.object_bake")
    bake = importlib.import_module(f"{addon}.geometry.bake")
    latent_sync = importlib.import_module(f"{addon}.geometry.latent_sync")
    cube = bpy.data.objects["Cube"]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    height, width = views[0].shape[:2]
    cameras = [view.camera() for view in object_bake.auto_views([cube], depsgraph, len(views), width, height)]
    passes = object_bake.view_passes(cameras, depsgraph)
    (mesh,) = object_bake.mesh_texels([cube], depsgraph, settings.texture_size)
    return latent_sync.view_disagreement(mesh.texels, [bake.BakeView(p.camera, image, p.depth)
                                                       for p, image in zip(passes, views)])


def _run(bpy: Any, addon: str, settings: Any, method: str, color_match: str, seed: int) -> tuple[float, float]:
    """(disagreement of the kept views, seconds of the Generate)."""
    pixels = importlib.import_module(f"{addon}.bridge.pixels")
    for image in [image for image in bpy.data.images if " view " in image.name]:
        bpy.data.images.remove(image)
    settings.object_method, settings.color_match, settings.seed = method, color_match, seed
    start = time.perf_counter()
    assert bpy.ops.latent_textures.generate() == {"FINISHED"}
    seconds = time.perf_counter() - start
    name = settings.result_image.name
    views = [pixels.read_pixels(bpy.data.images[f"{name} view {index}"])[..., :3]
             for index in range(1, settings.object_views + 1)]
    return _disagreement(bpy, addon, settings, views), seconds


def measure(bpy: Any, addon: str, model: str, controlnet: str, *, quick: bool) -> dict[str, Any]:
    views, size, texture, seeds = (3, 64, 256, (1,)) if quick else (4, 128, 512, (1, 2, 3))
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    cube = bpy.data.objects["Cube"]
    bpy.ops.object.select_all(action="DESELECT")
    cube.select_set(True)
    bpy.context.view_layer.objects.active = cube
    settings = bpy.context.scene.latent_textures
    settings.model, settings.prompt = model, "weathered crate"
    settings.width = settings.height = size
    settings.steps, settings.use_random_seed = 2, False
    settings.target, settings.object_views, settings.texture_size = "OBJECT", views, texture
    settings.control, settings.control_model = "DEPTH", controlnet
    settings.keep_view_images = True
    _run(bpy, addon, settings, "GRID", "NONE", seeds[0])  # warm-up: the model loads
    out: dict[str, Any] = {"cost": cost(addon, size=512, views=3, view_size=128, runs=1) if quick else
                           cost(addon, size=2048, views=6, view_size=512, runs=3)}
    out["case"] = (f"tiny SD + tiny depth ControlNet, default cube, {views} views of {size}², "
                   f"{texture}² texture, 2 steps, seeds {list(seeds)}")
    out["methods"] = {}
    for method in METHODS:
        rows: dict[str, dict[str, Any]] = {}
        for color_match in MATCHES:
            runs = [_run(bpy, addon, settings, method, color_match, seed) for seed in seeds]
            rows[color_match] = {"disagreement": [round(d, 5) for d, _ in runs],
                                 "disagreement_mean": round(statistics.fmean(d for d, _ in runs), 5),
                                 "seconds": [round(s, 3) for _, s in runs]}
        none = rows["NONE"]
        for color_match in MATCHES[1:]:
            row = rows[color_match]
            row["over_none"] = round(row["disagreement_mean"] / none["disagreement_mean"], 3)
            row["time_over_none"] = round(statistics.median(a / b for a, b in zip(row["seconds"], none["seconds"])), 3)
        out["methods"][method] = rows
    return out


def cost(addon: str, *, size: int, views: int, view_size: int, runs: int) -> dict[str, Any]:
    """CPU seconds of matching GRID's views (REINHARD, HISTOGRAM) over those of baking them, interleaved rounds."""
    import numpy as np

    object_bake = _load("lt_bench_color_object_bake", BENCH / "object_bake.py")
    geometry = {name: importlib.import_module(f"{addon}.geometry.{name}")
                for name in ("bake", "color_match", "raster", "uv_raster", "views")}
    space = importlib.import_module(f"{addon}.bridge.object_color").perceptual_space()
    uv, positions, normals = object_bake.uv_sphere()
    texels = geometry["uv_raster"].rasterize_uv_triangles(uv, positions, normals, size)
    rows, columns = np.mgrid[0:view_size, 0:view_size] / view_size
    bake_views = []
    for index, placed in enumerate(geometry["views"].place_views(np.zeros(3), 1.0, views, view_size, view_size)):
        camera = placed.camera()
        cast = 0.8 + 0.05 * index  # each view its own contrast: something to match
        image = np.stack([rows * cast, columns * cast, np.full_like(rows, 0.3 + 0.05 * index)], axis=-1)
        bake_views.append(geometry["bake"].BakeView(camera, image.astype(np.float32),
                                                    geometry["raster"].rasterize(camera, positions).depth))
    seconds: dict[str, list[float]] = {"bake": [], "REINHARD": [], "HISTOGRAM": []}
    for round_ in range(runs + 1):  # the first round warms up
        for name in seconds:
            start = time.process_time()
            if name == "bake":
                geometry["bake"].bake_texture(texels, bake_views)
            else:
                geometry["color_match"].match_views([[texels]], bake_views, name, space)
            if round_:
                seconds[name].append(time.process_time() - start)
    bake = statistics.median(seconds["bake"])
    return {"case": f"{size}² texture, {views} views of {view_size}², UV sphere of {len(uv)} triangles, {runs} rounds",
            "bake_cpu_s": round(bake, 3),
            "over_bake": {name: round(statistics.median(seconds[name]) / bake, 3) for name in ("REINHARD", "HISTOGRAM")}}


def render(section: dict[str, Any]) -> list[str]:
    """The results.md lines of the section."""
    if "skipped" in section:
        return ["## Color Match between views (issue 31)", "", f"Skipped: {section['skipped']}", ""]
    lines = ["## Color Match between views (issue 31)", "",
             f"{section['case']}. Disagreement: the views' mean absolute difference on shared surface "
             "(`geometry.latent_sync.view_disagreement`, display sRGB 0..1); random weights paint noise, so "
             "this shows the matching's effect on views with their own palettes, not a trained model's gain.", "",
             "| method | Color Match | disagreement (mean over seeds) | / None | Generate time / None |",
             "|---|---|---:|---:|---:|"]
    for method, rows in section["methods"].items():
        for color_match, row in rows.items():
            ratio = row.get("over_none", 1.0)
            time_ratio = row.get("time_over_none", 1.0)
            lines.append(f"| {method} | {color_match} | {row['disagreement_mean']:.4f} | {ratio} | {time_ratio} |")
    matching = section.get("cost")
    if matching:
        lines += ["", f"The matching alone against the bake it precedes ({matching['case']}; CPU time, medians): "
                      f"Reinhard {matching['over_bake']['REINHARD']} × the bake's {matching['bake_cpu_s']} s, "
                      f"Histogram {matching['over_bake']['HISTOGRAM']} ×."]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny-model", required=True)
    parser.add_argument("--controlnet", required=True)
    parser.add_argument("--quick", action="store_true", help="one seed, 3 views of 64², a 256² texture")
    args = parser.parse_args(argv)
    loader = _load("lt_bench_color_loader", BENCH.parent / "tools" / "extension_loader.py")
    user_dir = loader.isolate_user_resources(prefix="lt_bench_color_user_")
    atexit.register(shutil.rmtree, user_dir, ignore_errors=True)
    import bpy

    repo_dir = loader.make_extension_repo(prefix="lt_bench_color_repo_")
    atexit.register(loader.remove_extension_repo, repo_dir)
    loader.ensure_repo(repo_dir, REPO_MODULE)
    addon = loader.addon_module(REPO_MODULE)
    loader.enable(addon)
    result = measure(bpy, addon, args.tiny_model, args.controlnet, quick=args.quick)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
