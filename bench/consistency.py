"""Whole Object consistency (issue 29): how much the views of one run disagree about the surface, per method.

    python bench/consistency.py --out result.json --tiny-model DIR --controlnet DIR [--quick]

Runs in a bpy process (``bench/run.py`` starts it, section ``consistency``). Each method runs the way an artist
runs it: ``bpy.ops.latent_textures.generate()`` with Target Whole Object, Control Depth, **Keep View Images**,
the same seed, prompt, Size and steps - GRID, SEQUENTIAL, and SYNC at Sync Fraction 1.0 and at the default 0.8
- on Suzanne and on the default cube (turned 30 degrees about Z, see ``scene``), with 6 and 8 automatic views, with the tiny random-weight model.

The metric (``decoded``): the kept view images read back, each view's camera rebuilt from its recipe, the
scene's depth and the mesh's texels at the run's Texture Size, then ``geometry.latent_sync.view_disagreement``:
each view gathered alone into the texels with the RGB bake's own rules (depth test, grazing cut-off,
silhouette and frame fades), and for every pair of views the mean absolute difference (0..1 display values)
over the texels both see - what the bake has to blend. Random weights paint noise, and noise shows
disagreement perfectly. The wall time of each Generate (capture, generation, bake, writing) is reported too.

For SYNC the final latents and the latent correspondence of the run are recorded on their way (wrappers
installed from here around the add-on's ``Engine.generate_sync`` and ``decoding.decode``; nothing changed):

- ``latent_texel``: ``texel_disagreement`` - the views' latents where they read the same texel of the latent
  texture (SYNC's own correspondence). Synchronised steps render one value per texel into every view and the
  last DPM-Solver++ step lands on the synchronised x0, so at fraction 1.0 this is 0; the unsynchronised tail of
  fraction 0.8 lets the views drift again;
- ``latent_gather``: ``view_disagreement`` of the latents at latent size with the latent bake's settings
  (bilinear, like ``decoded``): not 0 even at 1.0, because the latent texture is finer than the views' latent
  pixels and each view reads it at its own sample points (resampling); large with random weights, whose x0 is
  white noise from one latent pixel to the next.

Why the decoded SYNC views still disagree: the VAE decodes each view in screen space - every 8 x 8 block of
pixels comes from its latent pixel *and its neighbours* (background, silhouettes, and texels seen by one view
only differ between views), and the same surface point falls at a different place inside its block in each
view (perspective, angle), so the decoder's pixel pattern does not move with the surface. The tiny model's
random decoder turns every latent pixel into high-contrast pixel noise, the worst case for this. (DDIM would
add a little per-view noise at the end too: 0.029 eps with ``set_alpha_to_one`` off; the runs here use the
default scheduler, DPM++ 2M, whose last step is the synchronised x0 itself.)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# (label, object_method, sync_fraction)
METHODS = (("GRID", "GRID", None), ("SEQUENTIAL", "SEQUENTIAL", None), ("SYNC 1.0", "SYNC", 1.0),
           ("SYNC 0.8", "SYNC", 0.8))
MESHES = ("Suzanne", "Cube")
SEED = 11
PROMPT = "weathered painted wood"
CUBE_TURN_DEGREES = 30.0


def _module(addon: str, name: str) -> Any:
    return __import__(f"{addon}.{name}", fromlist=["_"])


def scene(bpy: Any, mesh: str) -> Any:
    """A fresh factory scene holding only ``mesh`` (Suzanne or the default cube, each with its own UVs), selected.
    The cube is turned 30 degrees about Z: square to the automatic views, each face is seen well by one view only
    (the others see it beyond the bake's grazing cut-off or as a sliver inside its silhouette fade), so the
    views would share no surface to compare."""
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    if mesh == "Suzanne":
        bpy.data.objects.remove(bpy.data.objects["Cube"])
        bpy.ops.mesh.primitive_monkey_add()
    elif mesh != "Cube":
        raise ValueError(f"mesh must be one of {MESHES}; got {mesh!r}")
    obj = bpy.context.active_object if mesh == "Suzanne" else bpy.data.objects["Cube"]
    if mesh == "Cube":
        obj.rotation_euler[2] = math.radians(CUBE_TURN_DEGREES)
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    return obj


def configure(settings: Any, *, model: str, controlnet: str, views: int, size: int, steps: int,
              texture_size: int) -> None:
    """The settings every method shares (an artist's Whole Object run with Depth control)."""
    settings.model, settings.prompt = model, PROMPT
    settings.control, settings.control_model = "DEPTH", controlnet
    settings.width = settings.height = size
    settings.steps = steps
    settings.use_random_seed, settings.seed = False, SEED
    settings.target = "OBJECT"
    settings.object_views, settings.texture_size = views, texture_size
    settings.keep_view_images = True


def decoded_disagreement(bpy: Any, addon: str, result: Any, objects: list[Any]) -> float:
    """``view_disagreement`` of a finished Whole Object run's kept view images (see the module's docstring)."""
    import numpy as np

    views_module = _module(addon, "geometry.views")
    bake = _module(addon, "geometry.bake")
    latent_sync = _module(addon, "geometry.latent_sync")
    object_bake = _module(addon, "bridge.object_bake")
    read_pixels = _module(addon, "bridge.pixels").read_pixels
    recipe = result["latent_textures"].to_dict()
    cameras = []
    for entry in recipe["views"]:
        if entry["sensor_fit"] != "AUTO":
            raise ValueError(f"views: only automatic views (sensor fit AUTO) are rebuilt; got {entry['sensor_fit']}")
        cameras.append(views_module.ViewSettings(
            world_matrix=np.array(entry["matrix_world"], dtype=np.float64), ortho=entry["projection"] == "ORTHO",
            lens=entry["lens"], ortho_scale=entry["ortho_scale"], sensor_width=entry["sensor_width"],
            clip_start=entry["clip_start"], clip_end=entry["clip_end"], width=entry["width"],
            height=entry["height"]).camera())
    images = [read_pixels(bpy.data.images[f"{result.name} view {index}"])[..., :3]
              for index in range(1, len(cameras) + 1)]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depths = object_bake.view_depths(cameras, depsgraph)
    (mesh,) = object_bake.mesh_texels(objects, depsgraph, int(recipe["texture_size"]))
    views = [bake.BakeView(camera, image, depth) for camera, image, depth in zip(cameras, images, depths)]
    return latent_sync.view_disagreement(mesh.texels, views)


class SyncRecorder:
    """Records a SYNC run's latent views, latent bake and final latents from outside the add-on: wraps
    ``Engine.generate_sync`` and ``decoding.decode`` (calling the real ones) for the ``with`` block."""

    def __init__(self, addon: str) -> None:
        self.engine_class = _module(addon, "engine.engine").Engine
        self.decoding = _module(addon, "engine.decoding")
        self.views: list[Any] | None = None
        self.bake: Any = None
        self.decoded: list[Any] = []  # the latents of each decode call: the views, one call each

    def __enter__(self) -> SyncRecorder:
        generate_sync, decode = self.engine_class.generate_sync, self.decoding.decode
        self._originals = (generate_sync, decode)

        def recorded_generate_sync(engine: Any, request: Any, views: Any, *args: Any, **kwargs: Any) -> Any:
            self.views, self.bake, self.decoded = list(views), kwargs.get("bake"), []
            return generate_sync(engine, request, views, *args, **kwargs)

        def recorded_decode(pipe: Any, model: Any, placement: Any, latents: Any, *args: Any, **kwargs: Any) -> Any:
            self.decoded.append(latents.detach().to("cpu").float().numpy().copy())
            return decode(pipe, model, placement, latents, *args, **kwargs)

        self.engine_class.generate_sync = recorded_generate_sync
        self.decoding.decode = recorded_decode
        return self

    def __exit__(self, *exc: Any) -> None:
        self.engine_class.generate_sync, self.decoding.decode = self._originals

    def disagreement(self, addon: str) -> dict[str, float]:
        """``latent_texel`` and ``latent_gather`` of the recorded run (see the module's docstring)."""
        import numpy as np

        if self.views is None or not self.decoded or self.bake is None:
            raise ValueError("no SYNC run was recorded")
        latent_sync = _module(addon, "geometry.latent_sync")
        bake = _module(addon, "geometry.bake")
        latents = np.concatenate(self.decoded)  # (V, C, h, w): the engine decodes the views one call each
        per_pixel = np.ascontiguousarray(latents.transpose(0, 2, 3, 1))  # (V, h, w, C)
        views = [bake.BakeView(camera, image, depth)
                 for camera, image, depth in zip(self.bake.cameras, per_pixel, self.bake.depths)]
        (texels,) = self.bake.meshes  # one mesh per bench scene
        return {"latent_texel": latent_sync.texel_disagreement(self.views, latents),
                "latent_gather": latent_sync.view_disagreement(texels, views, self.bake.settings),
                "latent_mean_abs": float(np.abs(latents).mean()), "latent_max_abs": float(np.abs(latents).max())}


def run_method(bpy: Any, addon: str, obj: Any, method: str, fraction: float | None) -> dict[str, Any]:
    """One Generate with ``method`` on the configured scene: wall time, the decoded (and for SYNC the latent)
    disagreement; the run's images are removed afterwards."""
    settings = bpy.context.scene.latent_textures
    settings.object_method = method
    if fraction is not None:
        settings.sync_fraction = fraction
    before = set(bpy.data.images)
    with SyncRecorder(addon) as recorder:
        start, cpu_start = time.perf_counter(), time.process_time()
        if bpy.ops.latent_textures.generate() != {"FINISHED"}:
            raise RuntimeError(f"{method}: Generate did not finish")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    result = settings.result_image
    row: dict[str, Any] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "decoded": decoded_disagreement(bpy, addon, result, [obj]),
                           "view_size": result["latent_textures"]["views"][0]["width"]}
    if method == "SYNC":
        row.update(recorder.disagreement(addon))
        row["latent_texture_size"] = result["latent_textures"]["sync"]["latent_texture_size"]
    settings.result_image = None
    for image in set(bpy.data.images) - before:
        bpy.data.images.remove(image)
    return row


def measure(bpy: Any, addon: str, *, model: str, controlnet: str, meshes: tuple[str, ...] = MESHES,
            view_counts: tuple[int, ...] = (6, 8), size: int = 128, steps: int = 8, texture_size: int = 512,
            runs: int = 1, log: Any = print) -> dict[str, Any]:
    """Every method on every mesh and view count: ``cases[mesh][views][label]``, wall time the median of ``runs``
    (the metric is the same every run: same seed, bit-identical on the CPU)."""
    out: dict[str, Any] = {"size": size, "steps": steps, "texture_size": texture_size, "seed": SEED,
                           "scheduler": None, "runs": runs, "cases": {}}
    for _, method, fraction in METHODS:  # warm-up: each method's pipelines loaded and run once, nothing kept
        obj = scene(bpy, meshes[0])
        configure(bpy.context.scene.latent_textures, model=model, controlnet=controlnet, views=view_counts[0],
                  size=size, steps=steps, texture_size=texture_size)
        run_method(bpy, addon, obj, method, fraction)
    for mesh in meshes:
        for views in view_counts:
            case: dict[str, Any] = {}
            for label, method, fraction in METHODS:
                rows = []
                for _ in range(runs):
                    obj = scene(bpy, mesh)
                    settings = bpy.context.scene.latent_textures
                    configure(settings, model=model, controlnet=controlnet, views=views, size=size, steps=steps,
                              texture_size=texture_size)
                    out["scheduler"] = settings.scheduler
                    rows.append(run_method(bpy, addon, obj, method, fraction))
                row = dict(rows[0], wall_s=round(statistics.median(r["wall_s"] for r in rows), 3),
                           cpu_s=round(statistics.median(r["cpu_s"] for r in rows), 3))
                log(f"consistency: {mesh}, {views} views, {label}: decoded {row['decoded']:.4f}, {row['wall_s']} s "
                    f"(CPU {row['cpu_s']} s)")
                case[label] = row
            grid = case["GRID"]
            for row in case.values():
                row["decoded_over_grid"] = round(row["decoded"] / grid["decoded"], 3)
                row["wall_over_grid"] = round(row["wall_s"] / grid["wall_s"], 2)
                row["cpu_over_grid"] = round(row["cpu_s"] / grid["cpu_s"], 2)
            out["cases"].setdefault(mesh, {})[str(views)] = case
    return out


def render(section: dict[str, Any]) -> list[str]:
    """results.md lines for the section."""
    lines = [
        "## 15. Whole Object consistency (issue 29)",
        "",
        (f"`bench/consistency.py`, in a bpy process: `bpy.ops.latent_textures.generate()` with Target Whole Object, "
         f"Control Depth, Keep View Images, the tiny random-weight model and ControlNet, Size "
         f"{section['size']}², {section['steps']} steps, {section['scheduler']}, seed {section['seed']}, texture "
         f"{section['texture_size']}². **decoded**: the mean absolute disagreement (0..1) of every pair of kept "
         "view images over the texels both see (`geometry.latent_sync.view_disagreement`: each view gathered alone "
         "with the bake's rules); **/GRID**: the same as a share of GRID's; wall and CPU time (this process, all "
         f"threads) of the whole Generate (median of {section['runs']}) and the CPU time's ratio to GRID's (on a "
         "shared machine wall time follows the load; CPU time much less). GRID's views are its grid cells (smaller than "
         "Size), SEQUENTIAL's and SYNC's are Size × Size."),
        "",
        "| mesh | views | method | view px | decoded | /GRID | wall s | CPU s | CPU /GRID | SYNC latents: same "
        "texel | bilinear | mean abs latent |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mesh, by_views in section["cases"].items():
        for views, case in by_views.items():
            for label, row in case.items():
                latent = ("| — | — | — |" if "latent_texel" not in row else
                          f"| {row['latent_texel']:.2e} | {row['latent_gather']:.3f} | {row['latent_mean_abs']:.3f} |")
                lines.append(f"| {mesh} | {views} | {label} | {row['view_size']} | {row['decoded']:.4f} | "
                             f"{row['decoded_over_grid']:.2f} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | "
                             f"{row['cpu_over_grid']:.2f} "
                             + latent)
    lines += [
        "",
        ("SYNC's latents: **same texel** compares the views' final latents where they read the same texel of the "
         "latent texture (SYNC's own correspondence; `texel_disagreement`): synchronised steps render one value "
         "per texel into every view and DPM++ 2M's last step is the synchronised x0, so it is 0 at fraction 1.0; "
         "the unsynchronised tail of 0.8 lets the views drift again. **bilinear** gathers the latents like the "
         "decoded metric does: the latent texture is finer than a view's latent pixels and each view samples it "
         "at its own points (resampling), so even 1.0 is not 0 there - and with random weights it is large, "
         "because the random UNet's x0 is white noise from one latent pixel to the next: two grids sampling it "
         "half a pixel apart differ by about as much as the values (a trained model predicts a smooth x0)."),
        "",
        ("Why decoded SYNC is not 0: the VAE decodes each view in screen space - each 8×8 pixel block comes from "
         "its latent pixel and its neighbours (background, silhouettes and texels only one view sees differ "
         "between views), and a surface point sits at a different place inside its block in each view, so the "
         "decoder's pixel pattern does not move with the surface. The random decoder turns every latent into "
         "high-contrast pixel noise: the worst case. With trained weights decoded views follow the latents far "
         "more smoothly; judge the absolute level there."),
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--tiny-model", required=True, help="tiny SD folder (tools/tiny_models.py)")
    parser.add_argument("--controlnet", required=True, help="tiny ControlNet folder for it")
    parser.add_argument("--quick", action="store_true", help="smoke run: the cube, 6 views, Size 128², 2 steps")
    parser.add_argument("--runs", type=int, default=1, help="Generates per method for the wall time's median")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
    import blender_path  # the bpy-process set-up (isolated user folders, the add-on enabled as an extension)

    bpy, _ = blender_path._import_bpy()
    blender_path._enable()
    model, controlnet = str(Path(args.tiny_model).resolve()), str(Path(args.controlnet).resolve())

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.quick:
        result = measure(bpy, blender_path.ADDON, model=model, controlnet=controlnet, meshes=("Cube",),
                         view_counts=(6,), size=128, steps=2, texture_size=256, runs=1, log=log)
    else:
        result = measure(bpy, blender_path.ADDON, model=model, controlnet=controlnet, runs=args.runs, log=log)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
