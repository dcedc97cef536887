"""The Blender half of the benchmark: runs in its own process with ``bpy`` (``bench/run.py`` starts it).

Kept out of the benchmark's main process so that bpy's 430 MB and its threads
do not colour the engine-only figures, and so that "cold" really is cold: the
first Generate here pays for importing torch/diffusers and loading the model.

    python bench/blender_path.py --out result.json --tiny-model DIR [--sd-model DIR] [--runs 5]
    python bench/blender_path.py --enable-only --out result.json   (one cold "enable the add-on")

What it measures, with the add-on loaded the way Blender loads an extension
(``tools/extension_loader.py``) and the instruments outside the add-on (wrappers
and forward hooks installed from here, nothing in the add-on changed):

* enabling the add-on (cold: first time in the process);
* ``bpy.ops.latent_textures.generate()`` to texture-in-material, cold and warm
  (median of ``--runs``), split into the engine's own time and the add-on's
  overhead, and "before the first denoising step" beyond the text encoder;
* the pixel bridge (``bridge/pixels.py``) at 1024² and 2048², and writing a
  result image (new image + pixels + pack) at 512² and 1024²;
* a Whole Object run's time on the main thread, before and after issue 23 (``object_main_thread.py``);
* memory: RSS after import/enable, peak RSS of a generate, RSS after
  ``free_model`` (tiny model; with ``--sd-model`` also an SD-1.5-sized one).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib.util
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
REPO_MODULE = "lt_bench"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


timing = _load("lt_bench_timing", BENCH / "timing.py")
object_main_thread = _load("lt_bench_object_main_thread", BENCH / "object_main_thread.py")
loader = _load("lt_bench_extension_loader", REPO_ROOT / "tools" / "extension_loader.py")
ADDON = loader.addon_module(REPO_MODULE)


class Probe:
    """Clocks around the engine, installed from outside: get_engine, Engine.generate, text encoder, UNet."""

    def __init__(self) -> None:
        self.reset()
        self.hooked: set[int] = set()

    def reset(self) -> None:
        self.get_engine = 0.0
        self.generate = 0.0
        self.generate_start: float | None = None
        self.load = 0.0
        self.text_encoder = 0.0
        self.first_step: float | None = None
        self._te_start: float | None = None

    def install(self) -> None:
        import importlib

        engine_pkg = importlib.import_module(f"{ADDON}.engine")  # numpy only: torch loads in get_engine
        original_get = engine_pkg.get_engine
        probe = self

        def get_engine(options: Any = None) -> Any:
            start = time.perf_counter()
            engine = original_get(options)
            probe.get_engine += time.perf_counter() - start
            probe.wrap(engine)
            return engine

        engine_pkg.get_engine = get_engine

    def wrap(self, engine: Any) -> None:
        if getattr(engine, "_bench_wrapped", False):
            return
        engine._bench_wrapped = True
        generate, load = engine.generate, engine.cache.load
        probe = self

        def timed_generate(*args: Any, **kwargs: Any) -> Any:
            probe.generate_start = start = time.perf_counter()
            try:
                return generate(*args, **kwargs)
            finally:
                probe.generate += time.perf_counter() - start

        def timed_load(slot: str, *args: Any, **kwargs: Any) -> Any:
            if slot != "model":  # the base model's slot (engine/base_model.py); a cached one is not read again
                return load(slot, *args, **kwargs)
            start = time.perf_counter()
            model = load(slot, *args, **kwargs)
            probe.load += time.perf_counter() - start
            for pipe in model.pipelines.values():
                probe.hook(pipe)
            return model

        engine.generate = timed_generate
        engine.cache.load = timed_load

    def hook(self, pipe: Any) -> None:
        if id(pipe.unet) in self.hooked:
            return
        self.hooked.add(id(pipe.unet))

        def unet_pre(module: Any, args: Any) -> None:
            if self.first_step is None:
                self.first_step = time.perf_counter()

        def te_pre(module: Any, args: Any) -> None:
            self._te_start = time.perf_counter()

        def te_post(module: Any, args: Any, output: Any) -> None:
            if self._te_start is not None:
                self.text_encoder += time.perf_counter() - self._te_start
                self._te_start = None

        pipe.unet.register_forward_pre_hook(unet_pre)
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is not None:
                encoder.register_forward_pre_hook(te_pre)
                encoder.register_forward_hook(te_post)


def _import_bpy() -> tuple[Any, float]:
    user_dir = loader.isolate_user_resources(prefix="lt_bench_user_")
    atexit.register(shutil.rmtree, user_dir, ignore_errors=True)
    start = time.perf_counter()
    import bpy

    return bpy, time.perf_counter() - start


def _enable() -> float:
    repo_dir = loader.make_extension_repo(prefix="lt_bench_repo_")
    atexit.register(loader.remove_extension_repo, repo_dir)  # the link only, never the checkout
    loader.ensure_repo(repo_dir, REPO_MODULE)
    start = time.perf_counter()
    loader.enable(ADDON)
    return time.perf_counter() - start


def _scene(bpy: Any, model: str, size: int, steps: int) -> Any:
    """Factory scene (cube, camera, light), the cube active, settings for a fixed-seed MATERIAL generate."""
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    settings = bpy.context.scene.latent_textures
    settings.model = model
    settings.prompt = "rusty metal plate"
    settings.width = settings.height = size
    settings.steps = steps
    settings.use_random_seed = False
    settings.seed = 1234
    settings.target = "MATERIAL"
    return settings


def _generate(bpy: Any, probe: Probe) -> dict[str, Any]:
    probe.reset()
    start = time.perf_counter()
    outcome = bpy.ops.latent_textures.generate()
    total = time.perf_counter() - start
    assert outcome == {"FINISHED"}, outcome
    material = bpy.data.objects["Cube"].active_material
    assert any(n.type == "TEX_IMAGE" and n.image is not None for n in material.node_tree.nodes)
    imports = probe.get_engine  # cold: importing torch/diffusers happens in get_engine
    engine = probe.generate
    before_step = None
    if probe.first_step is not None:
        before_step = probe.first_step - start - imports - probe.load - probe.text_encoder
    engine_before_step = None
    if probe.first_step is not None and probe.generate_start is not None:
        engine_before_step = probe.first_step - probe.generate_start - probe.load - probe.text_encoder
    return {
        "total_s": total,
        "imports_s": imports,
        "load_s": probe.load,
        "engine_s": engine,
        "text_encoder_s": probe.text_encoder,
        "addon_overhead_s": total - imports - engine,
        "before_first_step_beyond_text_encoder_s": before_step,
        "engine_before_first_step_beyond_text_encoder_s": engine_before_step,
    }


def _median_dict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = [row[key] for row in rows if row[key] is not None]
        out[key] = round(statistics.median(values), 5) if values else None
    out["runs"] = len(rows)
    return out


def _pixels(bpy: Any, runs: int) -> dict[str, Any]:
    import numpy as np

    pixels = sys.modules[f"{ADDON}.bridge.pixels"]
    results_mod = sys.modules[f"{ADDON}.bridge.results"]
    out: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for size in (1024, 2048):
        array = rng.random((size, size, 4), dtype=np.float32)
        for kind, is_float in (("byte", False), ("float", True)):
            image = bpy.data.images.new(f"bench_{kind}_{size}", size, size, alpha=True, float_buffer=is_float)
            contenders = {
                "write": lambda image=image, array=array: pixels.write_pixels(image, array),
                "read": lambda image=image: pixels.read_pixels(image),
            }
            samples = timing.interleave(contenders, runs=runs, warmup=1, threads={"write": 1, "read": 1})
            for name, sample in samples.items():
                out[f"{name}_{kind}_{size}_ms"] = sample.summary(scale=1000, digits=1)
            bpy.data.images.remove(image)
    recipe = {"prompt": "bench", "seed": 1}
    for size in (512, 1024):
        array = rng.random((size, size, 4), dtype=np.float32)
        made: list[Any] = []

        def write_result(array: Any = array, made: list[Any] = made) -> None:
            made.append(results_mod.create_result_image(results_mod.Changes(), array, recipe))

        def clean(made: list[Any] = made) -> None:
            while made:
                bpy.data.images.remove(made.pop())

        sample = timing.interleave(
            {"result": write_result}, runs=runs, warmup=1, between=clean, threads={"result": 1}
        )["result"]
        clean()
        out[f"result_image_{size}_ms"] = sample.summary(scale=1000, digits=1)
    return out


def _sd_memory(bpy: Any, probe: Probe, model: str) -> dict[str, Any]:
    """Peak RSS of a 256², 1-step generate with an SD-1.5-sized model in bpy, and RSS after freeing it."""
    _scene(bpy, model, 256, 1)
    gc.collect()
    before = timing.rss_mb()
    timing.reset_peak_rss()
    row = _generate(bpy, probe)
    peak = timing.peak_rss_mb()
    loaded = timing.rss_mb()
    loaded_split = timing.rss_split_mb()
    start = time.perf_counter()
    bpy.ops.latent_textures.free_model()
    free_s = time.perf_counter() - start
    freed = timing.rss_mb()
    return {
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "rss_loaded_mb": loaded,
        "rss_loaded_anon_mb": loaded_split["anon"],
        "rss_loaded_file_mb": loaded_split["file"],
        "rss_after_free_mb": freed,
        "free_model_s": free_s,
        "generate_s": row["total_s"],
        "load_s": row["load_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--tiny-model", help="tiny SD folder (tools/tiny_models.py)")
    parser.add_argument("--sd-model", help="SD-1.5-sized folder for the memory figures (optional)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--enable-only", action="store_true", help="only time enabling the add-on, cold")
    parser.add_argument("--object-sizes", default="2048:6,4096:8", help="Whole Object main-thread figures: "
                        "texture size:views, comma-separated")
    parser.add_argument("--object-levels", type=int, default=3, help="Suzanne's subdivision levels (3: 63k triangles)")
    args = parser.parse_args(argv)

    bpy, import_s = _import_bpy()
    rss_bpy = timing.rss_mb()
    enable_s = _enable()
    result: dict[str, Any] = {"import_bpy_s": import_s, "enable_s": enable_s, "rss_after_import_bpy_mb": rss_bpy}
    if args.enable_only:
        Path(args.out).write_text(json.dumps(result))
        return 0

    result["rss_after_enable_mb"] = timing.rss_mb()
    probe = Probe()
    probe.install()
    model = str(Path(args.tiny_model).resolve())

    _scene(bpy, model, args.size, args.steps)
    timing.reset_peak_rss()
    result["cold"] = _generate(bpy, probe)
    result["memory_tiny"] = {
        "peak_rss_cold_generate_mb": timing.peak_rss_mb(),
        "rss_after_cold_generate_mb": timing.rss_mb(),
    }

    rows = []
    for _ in range(args.runs + 1):
        _scene(bpy, model, args.size, args.steps)
        rows.append(_generate(bpy, probe))
    result["warm"] = _median_dict(rows[1:])  # the first warm run is the warm-up
    result["warm_samples_total_s"] = [round(r["total_s"], 4) for r in rows[1:]]

    bpy.ops.latent_textures.free_model()
    result["memory_tiny"]["rss_after_free_mb"] = timing.rss_mb()

    result["pixels"] = _pixels(bpy, args.runs)
    sizes = tuple(tuple(int(n) for n in pair.split(":")) for pair in args.object_sizes.split(","))
    result["whole_object_main_thread"] = object_main_thread.measure(
        bpy, ADDON, sizes, levels=args.object_levels, view_size=512 if args.object_levels >= 3 else 128,
        runs=min(args.runs, 3))
    if args.sd_model:
        result["memory_sd15"] = _sd_memory(bpy, probe, str(Path(args.sd_model).resolve()))
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
