"""How long a Whole Object run holds Blender's main thread (issue 23 item 7), before and after the move.

Run inside ``bench/blender_path.py`` (bpy, the add-on enabled). A Suzanne subdivided 3 times (63k triangles,
its own UVs), views of 512² with Depth control; per texture size (2048²: 6 views, 4096²: 8 views), median
seconds of:

- ``before``: the capture as it ran on the main thread until issue 23 (views placed, depth/control passes
  and texels: ``auto_views``, ``view_passes``, ``mesh_texels``) and writing the texture there
  (``create_result_image``: ``pixels.foreach_set`` + ``pack()``, which encodes the PNG);
- ``after``: ``plan.prepare`` (all the main thread does at Generate: settings, triangles copied out) and
  packing the PNG the worker encoded (``create_result_image(png=...)``); ``first_draw_decode``: Blender
  decoding that PNG the first time the image is drawn or read (main thread, later);
- ``worker``: what moved to the worker (``ObjectCapture.prepare`` + ``pixels.encode_png``), for scale.
"""

from __future__ import annotations

import importlib
import statistics
import time
from typing import Any


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def _scene(bpy: Any, levels: int) -> Any:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.mesh.primitive_monkey_add()
    monkey = bpy.context.active_object
    monkey.modifiers.new("Subdivision", "SUBSURF").levels = levels
    monkey.select_set(True)
    return monkey


def measure(bpy: Any, addon: str, sizes: tuple[tuple[int, int], ...] = ((2048, 6), (4096, 8)), levels: int = 3,
            view_size: int = 512, runs: int = 3) -> dict[str, Any]:
    import numpy as np

    object_bake = importlib.import_module(f"{addon}.bridge.object_bake")
    object_target = importlib.import_module(f"{addon}.bridge.object_target")
    plan_module = importlib.import_module(f"{addon}.bridge.plan")
    pixels = importlib.import_module(f"{addon}.bridge.pixels")
    results = importlib.import_module(f"{addon}.bridge.results")
    monkey = _scene(bpy, levels)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = monkey.evaluated_get(depsgraph).to_mesh()
    evaluated.calc_loop_triangles()
    out: dict[str, Any] = {"triangles": len(evaluated.loop_triangles), "view_size": view_size, "sizes": {}}
    monkey.evaluated_get(depsgraph).to_mesh_clear()
    settings = bpy.context.scene.latent_textures
    settings.target, settings.control = "OBJECT", "DEPTH"
    settings.width = settings.height = view_size
    texture = None
    for size, views in sizes:
        settings.object_views, settings.texture_size = views, size
        rows: dict[str, list[float]] = {k: [] for k in ("before_capture", "before_write", "after_capture",
                                                        "after_write", "first_draw_decode", "worker")}
        for round_ in range(runs + 1):  # the first round warms up
            start = time.perf_counter()
            placed = object_bake.auto_views([monkey], depsgraph, views, view_size, view_size)
            passes = object_bake.view_passes([view.camera() for view in placed], depsgraph, "DEPTH")
            (texels,) = object_bake.mesh_texels([monkey], depsgraph, size)
            before_capture = time.perf_counter() - start
            if texture is None or texture.shape[0] != size:
                images = [np.random.default_rng(i).random((view_size, view_size, 3), dtype=np.float32)
                          for i in range(views)]
                texture = object_bake.bake_mesh(texels, object_bake.bake_views(passes, images)).texture
            del texels, passes
            changes = results.Changes()
            start = time.perf_counter()
            results.create_result_image(changes, texture, {"seed": 1}, name="before")
            before_write = time.perf_counter() - start
            changes.rollback()

            start = time.perf_counter()
            plan = plan_module.prepare(bpy.context, object_target.TARGET)
            after_capture = time.perf_counter() - start
            start = time.perf_counter()
            plan.target_capture.prepare(plan.request)
            png = pixels.encode_png(texture)
            worker = time.perf_counter() - start
            plan.target_capture = None
            changes = results.Changes()
            start = time.perf_counter()
            image = results.create_result_image(changes, texture, {"seed": 1}, name="after", png=png)
            after_write = time.perf_counter() - start
            start = time.perf_counter()
            image.size[0]  # noqa: B018 - Blender decodes the packed PNG here, as it does on the first draw
            decode = time.perf_counter() - start
            changes.rollback()
            if round_:
                for key, value in (("before_capture", before_capture), ("before_write", before_write),
                                   ("after_capture", after_capture), ("after_write", after_write),
                                   ("first_draw_decode", decode), ("worker", worker)):
                    rows[key].append(value)
        row = {f"{key}_s": _median(values) for key, values in rows.items()}
        row["views"] = views
        row["before_main_s"] = round(row["before_capture_s"] + row["before_write_s"], 4)
        row["after_main_s"] = round(row["after_capture_s"] + row["after_write_s"], 4)
        out["sizes"][str(size)] = row
    return out


def report_lines(figures: dict | None) -> list[str]:
    """Issue 23: how long a Whole Object run holds the main thread (capture + writing the texture)."""
    if not figures:
        return []
    lines = [
        (f"Whole Object on the main thread (`bench/object_main_thread.py`: Suzanne, {figures['triangles']:,} "
         f"triangles, views of {figures['view_size']}², Depth; median s). *Before*: the capture rasterised there and "
         "the texture was written with `foreach_set` + `pack()`; *after*: only the triangles are copied out and the "
         "PNG the worker encoded is packed (Blender decodes it when the image is first drawn):"),
        "",
        "| texture | views | before: capture | before: write | **before** | after: capture | after: write "
        "| **after** | first draw decode | moved to the worker |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, row in figures["sizes"].items():
        lines.append(f"| {size}² | {row['views']} | {row['before_capture_s']:.3f} | {row['before_write_s']:.3f} | "
                     f"**{row['before_main_s']:.3f}** | {row['after_capture_s']:.3f} | {row['after_write_s']:.3f} | "
                     f"**{row['after_main_s']:.3f}** | {row['first_draw_decode_s']:.3f} | {row['worker_s']:.3f} |")
    return [*lines, ""]
