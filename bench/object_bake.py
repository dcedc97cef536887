"""Bake timing (issue 11): a 2048^2 texture from 8 views of 512^2, geometry + bake + fill, no diffusion.

    python bench/object_bake.py [--size 2048] [--views 8] [--view-size 512] [--runs 3]

The object is a UV sphere of 128 x 64 segments (16k triangles, smooth normals, one
equirectangular UV island: seams at the poles and the date line) framed by the automatic
views; the views' images are smooth colour fields and their depth images come from the
numpy z-buffer (``geometry.raster``, timed apart: in the add-on they come from the
geometry passes). Timed stages, each a median over the runs:

- ``texels``: rasterising the UV triangles into per-texel world positions and normals,
- ``gather``: projecting every texel into every view, depth test, weights, bilinear samples,
- ``fill``: unseen texels from the 3D neighbours, then the gutter padding,
- ``total``: the three together (what the issue's <= 5 s is about).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: bench/ holds the helper modules

import timing  # noqa: E402


def uv_sphere(segments: int = 128, rings: int = 64, radius: float = 1.0):
    """(uv, positions, normals) of shape (T, 3, 2|3|3) of a UV sphere with smooth normals."""
    u = np.linspace(0.0, 1.0, segments + 1)
    v = np.linspace(0.0, 1.0, rings + 1)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    theta, phi = 2 * np.pi * uu, np.pi * (vv - 0.5)
    normal = np.stack([np.cos(phi) * np.cos(theta), np.cos(phi) * np.sin(theta), np.sin(phi)], axis=-1)
    uv = np.stack([uu, vv], axis=-1) * 0.98 + 0.01
    corners = [(slice(None, -1), slice(None, -1)), (slice(1, None), slice(None, -1)),
               (slice(1, None), slice(1, None)), (slice(None, -1), slice(1, None))]
    quads = [(uv[c], normal[c]) for c in corners]
    triangles_uv = np.concatenate([np.stack([quads[i][0] for i in (0, 1, 2)], axis=2).reshape(-1, 3, 2),
                                   np.stack([quads[i][0] for i in (0, 2, 3)], axis=2).reshape(-1, 3, 2)])
    triangles_normal = np.concatenate([np.stack([quads[i][1] for i in (0, 1, 2)], axis=2).reshape(-1, 3, 3),
                                       np.stack([quads[i][1] for i in (0, 2, 3)], axis=2).reshape(-1, 3, 3)])
    return triangles_uv, radius * triangles_normal, triangles_normal


def measure(size: int = 2048, views: int = 8, view_size: int = 512, runs: int = 3) -> dict[str, Any]:
    geometry = timing._load_package_loader().import_subpackage("geometry")
    from importlib import import_module

    package = geometry.__name__
    uv_raster = import_module(f"{package}.uv_raster")
    bake = import_module(f"{package}.bake")
    fill = import_module(f"{package}.fill")
    views_module = import_module(f"{package}.views")
    raster = import_module(f"{package}.raster")

    uv, positions, normals = uv_sphere()
    placed = views_module.place_views(np.zeros(3), 1.0, views, view_size, view_size)
    depth_start = time.perf_counter()
    bake_views = []
    rows, columns = np.mgrid[0:view_size, 0:view_size] / view_size
    for index, settings in enumerate(placed):
        camera = settings.camera()
        depth = raster.rasterize(camera, positions).depth
        image = np.stack([rows, columns, np.full_like(rows, index / views)], axis=-1).astype(np.float32)
        bake_views.append(bake.BakeView(camera, image, depth))
    depth_seconds = time.perf_counter() - depth_start

    stages: dict[str, timing.Samples] = {name: timing.Samples() for name in ("texels", "gather", "fill", "total")}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in stages}
    for round_ in range(runs + 1):  # the first round warms up
        wall, cpu = {}, {}

        def stage(name: str, start: float, cpu_start: float) -> None:
            wall[name] = time.perf_counter() - start
            cpu[name] = time.process_time() - cpu_start

        start, cpu_start = time.perf_counter(), time.process_time()
        texels = uv_raster.rasterize_uv_triangles(uv, positions, normals, size)
        stage("texels", start, cpu_start)
        mark, cpu_mark = time.perf_counter(), time.process_time()
        gathered = bake.gather_views(texels, bake_views)
        stage("gather", mark, cpu_mark)
        mark, cpu_mark = time.perf_counter(), time.process_time()
        colour = fill.fill_unseen(texels.position, gathered.colour, gathered.seen, texels.spacing)
        texture = np.zeros((size * size, colour.shape[1]), dtype=np.float32)
        texture[texels.index] = colour
        fill.pad_gutter(texture.reshape(size, size, -1), texels.mask)
        stage("fill", mark, cpu_mark)
        stage("total", start, cpu_start)
        if round_ > 0:
            for name, seconds in wall.items():
                stages[name].times.append(seconds)
                stages[name].cpu_share.append(cpu[name] / seconds)  # numpy here runs on one core
                cpu_seconds[name].append(cpu[name])
    return {
        "case": f"{size}^2 texture from {views} views of {view_size}^2, UV sphere of {len(uv)} triangles",
        "covered_texels": int(len(texels.index)),
        "seen_share": round(float(gathered.seen.mean()), 4),
        "depth_images_s": round(depth_seconds, 3),
        **{f"{name}_s": {**samples.summary(digits=3), "cpu_median": round(statistics.median(cpu_seconds[name]), 3)}
           for name, samples in stages.items()},
        "load_average": timing.load_average(),
    }


def generation_per_view(model: str, *, views: int, view_size: int, steps: int, runs: int) -> dict[str, Any]:
    """The diffusion side of Whole Object, per view: GRID (one generation of the tiled views) and
    SEQUENTIAL (one inpaint per view after the first), timed on one engine; no ControlNet (a sized
    one cannot be loaded here), so the figures are the UNet's share of a view."""
    import statistics

    import numpy as np

    engine_api = timing.import_engine()
    grid = timing._load_package_loader().import_subpackage("geometry.grid")
    rows, columns = grid.grid_shape(views)
    engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    prompt = "weathered oak crate"
    grid_request = engine_api.GenerationRequest(prompt=prompt, model=model, width=columns * view_size,
                                                height=rows * view_size, steps=steps, seed=1)
    image = np.full((view_size, view_size, 3), 0.5, dtype=np.float32)
    mask = np.zeros((view_size, view_size), dtype=np.float32)
    mask[:, view_size // 2:] = 1.0
    view_request = engine_api.GenerationRequest(prompt=prompt, model=model, mode="INPAINT", init_image=image,
                                                mask_image=mask, strength=1.0, width=view_size, height=view_size,
                                                steps=steps, seed=1)
    engine.generate(grid_request)  # warm-up: load, first-step costs
    grid_times, view_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        engine.generate(grid_request)
        grid_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.generate(view_request)
        view_times.append(time.perf_counter() - start)
    engine.free()
    return {"views": views, "view_size": view_size, "steps": steps, "grid": f"{columns * view_size}x{rows * view_size}",
            "grid_s_per_view": round(statistics.median(grid_times) / views, 4),
            "sequential_s_per_view": round(statistics.median(view_times), 4),
            "dtype": str(engine.dtype).removeprefix("torch.")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--view-size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.size, args.views, args.view_size, args.runs), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
