"""Depth/normal images of a ~100k-triangle scene: three ways, in a bpy process (``bench/run.py`` starts it).

    python bench/geometry_passes.py --out result.json [--runs 3] [--sizes 512,1024] [--quick]

Contenders, each producing the per-pixel view depth (and normals where the method gives them)
of the same evaluated scene through the same camera frame (``bridge.geometry.view_camera``):

* ``zbuffer``  - the add-on's way: evaluated triangles -> numpy z-buffer (``geometry.rasterize``)
                 -> depth + shading normals (``bridge.geometry.geometry_passes``), all included;
* ``bvh_rays`` - ``mathutils.bvhtree`` built from the same triangles, one ``ray_cast`` per pixel
                 from Python (gives depth and face normals);
* ``cycles``   - a Cycles CPU render, 1 sample, no denoising, a material override emitting View Z
                 Depth, saved to a 32-bit EXR and read back (depth only; normals would be a second pass).

The three depth images are compared (share of pixels that agree within 1e-3 relative) so the
figures are for the same result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
import blender_path  # noqa: E402 - the bpy-process set-up (isolated user folders, the add-on enabled as an extension)

timing = blender_path.timing


def _scene(bpy: Any, quick: bool) -> int:
    """Factory camera; a UV sphere of ~100k triangles (modifier-free) in front of a ground plane. Returns the triangle count."""
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    for name in ("Cube", "Light"):
        bpy.data.objects.remove(bpy.data.objects[name])
    segments, rings = (64, 50) if quick else (256, 200)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=rings, radius=1.5)
    bpy.ops.object.shade_smooth()
    bpy.ops.mesh.primitive_plane_add(size=40.0, location=(0.0, 0.0, -1.5))
    depsgraph = bpy.context.evaluated_depsgraph_get()
    count = 0
    for obj in bpy.context.scene.objects:
        if obj.type == "MESH":
            mesh = obj.evaluated_get(depsgraph).data
            mesh.calc_loop_triangles()
            count += len(mesh.loop_triangles)
    return count


def _zbuffer(bpy: Any, geometry: Any, size: int) -> Any:
    scene = bpy.context.scene
    return geometry.geometry_passes(scene, bpy.context.evaluated_depsgraph_get(), size, size)


def _bvh_rays(bpy: Any, geometry: Any, size: int) -> Any:
    import numpy as np
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    depsgraph = bpy.context.evaluated_depsgraph_get()
    scene = bpy.context.scene
    camera = geometry.view_camera(scene, scene.camera, size, size, depsgraph)
    corners = geometry.scene_triangles(depsgraph).corners
    tree = BVHTree.FromPolygons([tuple(map(float, p)) for p in corners.reshape(-1, 3)],
                                [(3 * i, 3 * i + 1, 3 * i + 2) for i in range(len(corners))])
    origins, directions = camera.pixel_rays()
    forward = camera.forward
    depth = np.full(size * size, np.inf, dtype=np.float32)
    normals = np.zeros((size * size, 3), dtype=np.float32)
    cast = tree.ray_cast
    for i, (origin, direction) in enumerate(zip(origins.reshape(-1, 3).tolist(), directions.reshape(-1, 3).tolist())):
        hit, normal, _, distance = cast(Vector(origin), Vector(direction))
        if hit is not None:
            depth[i] = distance * (direction[0] * forward[0] + direction[1] * forward[1] + direction[2] * forward[2])
            normals[i] = normal
    return depth.reshape(size, size)


def _cycles(bpy: Any, size: int, folder: str) -> Any:
    import numpy as np

    scene = bpy.context.scene
    material = bpy.data.materials.get("bench depth") or bpy.data.materials.new("bench depth")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # 4.x makes a material's node tree only on request
    tree = material.node_tree
    tree.nodes.clear()
    camera_data = tree.nodes.new("ShaderNodeCameraData")
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(camera_data.outputs["View Z Depth"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    scene.view_layers[0].material_override = material
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.filter_width = 0.01
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.world = None  # a black background: depth 0 where nothing is hit
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    path = os.path.join(folder, f"depth_{size}.exr")
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(path)
    pixels = np.empty(size * size * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return np.flipud(pixels.reshape(size, size, 4)[..., 0])


def _agreement(a: Any, b: Any) -> float:
    import numpy as np

    both = np.isfinite(a) & np.isfinite(b) & (b > 0)
    same_coverage = np.isfinite(a) == (np.isfinite(b) & (b > 0))
    close = np.zeros_like(same_coverage)
    close[both] = np.abs(a[both] - b[both]) <= 1e-3 * np.abs(a[both])
    return round(float((close | (same_coverage & ~both)).mean()), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--quick", action="store_true", help="a ~6k-triangle scene, one run")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    bpy, _ = blender_path._import_bpy()
    blender_path._enable()
    geometry = __import__(f"{blender_path.ADDON}.bridge.geometry", fromlist=["_"])

    triangles = _scene(bpy, args.quick)
    runs = 1 if args.quick else args.runs
    result: dict[str, Any] = {"triangles": triangles, "runs": runs, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="lt_bench_geometry_") as folder:
        for size in sizes:
            depths: dict[str, Any] = {}

            def contender(name: str, fn: Any) -> Any:
                def run() -> None:
                    depths[name] = fn()
                return run

            threads = {"zbuffer": 1, "bvh_rays": 1, "cycles": os.cpu_count() or 1}
            samples = timing.interleave(
                {
                    "zbuffer": contender("zbuffer", lambda: _zbuffer(bpy, geometry, size).depth),
                    "bvh_rays": contender("bvh_rays", lambda: _bvh_rays(bpy, geometry, size)),
                    "cycles": contender("cycles", lambda: _cycles(bpy, size, folder)),
                },
                runs=runs, warmup=0 if args.quick else 1, threads=threads,
            )
            result["sizes"][str(size)] = {
                "seconds": {name: s.summary() for name, s in samples.items()},
                # On a shared machine wall time mostly measures the neighbours: CPU seconds are comparable.
                "cpu_seconds": {name: round(s.median * statistics.median(s.cpu_share) * threads[name], 3)
                                for name, s in samples.items()},
                "zbuffer_vs": {name: timing.paired_ratio(samples, "zbuffer", name) for name in ("bvh_rays", "cycles")},
                "depth_agreement_with_zbuffer": {name: _agreement(depths["zbuffer"], depths[name])
                                                 for name in ("bvh_rays", "cycles")},
            }
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
