"""The benchmark: ``make bench`` (= ``python bench/run.py``) -> bench/results.json + bench/results.md.

Sections (issues 6 and 14), each figure a median of several runs after a warm-up,
every comparison a paired ratio measured in one process:

1. ``engine``   - a default Generate (precision Auto) and the engine in FP32 vs out-of-the-box
                  diffusers (fp32), wall time: tiny model at 64x64 and 256x256 (4 steps),
                  SD-1.5-sized random weights at 256x256 (2 steps); same model, settings, seed.
2. ``roofline`` - one SD-1.5-sized UNet step at 256x256 with CFG: FLOPs, achieved GFLOP/s next to
                  a 4096x4096 matmul (fp32 and bf16) run in the same rounds, NCHW vs channels_last,
                  threads, attention, bf16; the default precision's kernels alone at 256² and 512².
3. ``few_step`` - LCM/turbo-sized: SD-1.5-sized, LCM, 4 steps, guidance 1, end to end with a new
                  prompt each run, where the time goes, and each component's dtype.
4. ``compile``  - Compile the Model: the first Generate with an empty compile cache and again in a
                  new process with that cache (cold vs warm), and the compiled vs eager gain.
5. ``blender``  - in a separate process with bpy: enabling the add-on; Generate to texture-in-material
                  (tiny model, 64x64) cold and warm, minus the engine's time; the pixel bridge.
6. ``memory``   - (same process as 5) peak RSS of a generate in bpy; RSS after ``free_model``.
7. ``gpu``      - CUDA only (else reported as skipped): SD-1.5/SDXL-sized, 512/1024, 20 steps, fp16,
                  raw vs engine and raw with each speed option on and off.
8. ``geometry`` - in a bpy process: depth/normal images of a ~100k-triangle scene at 512² and 1024²,
                  the add-on's numpy z-buffer vs BVH ray casts vs a Cycles depth render.
9. ``bake``     - whole-object bake (issue 11), no diffusion: a 2048² texture from 8 views of 512²
                  (texels from the UV map, gather from the views, fill + gutter), numpy only.
10. ``controlnet`` - time per denoising step with a DEPTH ControlNet vs the plain pipeline (same engine,
                  model and seed): tiny model at 64x64, SD-1.5-sized with an SD-1.5-ControlNet-sized
                  ControlNet at 256x256 (``--quick``: tiny only).
11. ``insight``  - (issue 13) Generate with the filmstrip / attention maps present but off vs each one on
                  (tiny model, 128x128), and the panel's token count.
12. ``scan``    - scanning 200 model files for the model picker, headers only (bench/model_scan.py).
13. ``upscale`` - (issue 16) time per output megapixel of the tiled redraw, its peak RSS against one
                  untiled img2img at the output size, the blend's own cost (bench/upscale.py).
14. ``avx2``    - (issue 14) the fp32 UNet step, packed (the engine's default), eager and compiled, on this CPU held to AVX2 in a child process
                  (bench/isa_limit.py): the other machine kind's code paths, as shares of the sgemm rate
                  measured under the same limit. Skipped without AVX-512 (there section 2 is AVX2 itself).
15. ``consistency`` - (issue 29) in a bpy process: how much a Whole Object run's views disagree about the surface
                  (kept view images compared where both see it) for GRID, SEQUENTIAL and SYNC at Sync Fraction 1.0
                  and 0.8, on Suzanne and a cube with 6 and 8 views, through the real operator; each run's wall
                  time; SYNC's latent disagreement (bench/consistency.py).
16. ``color_match`` - (issue 31) Whole Object views' disagreement on shared surface, GRID and SEQUENTIAL, with
                  Color Match None / Reinhard / Histogram, same seeds, tiny model, in a bpy process
                  (bench/color_match.py), and each run's time over None's.
17. ``maps``    - (issue 30) material maps: each map's cost at 768² against one generation, the peak RSS of a
                  full PBR run (bench/material_maps.py; --quick: tiny models).
18. ``reference`` - (issue 31) a reference image's cost per generation (bench/reference_cost.py: plain / the
                  same picture / a new picture, tiny model + tiny IP-Adapter) and SEQUENTIAL's view disagreement
                  with and without View 1 as Reference, in a bpy child (bench/reference_images.py).
19. ``sync``    - (issue 29) Whole Object SYNC's cost per synchronised step split into UNet, ControlNet and
                  sync (latent bake + render back): 6 views of 512², SD-1.5-sized (bench/sync_step.py;
                  ``--quick``: tiny model at 64²).


    python bench/run.py [--quick] [--sections engine,roofline,...] [--runs N]
                        [--model-dir DIR] [--out DIR] [--update]

``--update`` measures only ``--sections`` and keeps the other sections of the results already
in ``--out`` (results.md then names the run each section comes from).
``--quick``: a smoke run in about a minute - tiny model everywhere, fewer runs, no compile
section unless ``--sections`` names it (figures are not the headline ones). The SD-1.5-sized model (4.3 GB of random weights) is built in a
temp folder and deleted afterwards unless ``--model-dir`` keeps it for the next run.
The machine may be shared: each figure records the CPU share its runs got (1.0 = the
cores were ours), and the load average is written at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # run as a script: bench/ holds the helper modules

import consistency
import controlnet_overhead
import engine_vs_raw
import few_step
import gpu
import object_bake
import insight
import layer_times
import material_maps
import model_scan
import reference_images
import report
import roofline
import sized_models
import timing
import upscale

SECTIONS = ("engine", "roofline", "few_step", "compile", "blender", "memory", "gpu", "geometry", "bake",
            "controlnet", "insight", "scan", "upscale", "avx2", "consistency", "color_match", "maps", "reference",
            "sync")
_T0 = time.perf_counter()


# Sections --quick leaves out unless --sections names them: each compiles for minutes.
QUICK_LEAVES_OUT = {
    "compile": "--quick (compiling takes minutes): name it in --sections to run it on the tiny model",
    "avx2": "--quick (it compiles the SD-1.5-sized UNet: minutes): name it in --sections",
}


def left_out(section: str, args: argparse.Namespace) -> str | None:
    """Why this run leaves ``section`` out (``--quick`` without naming it), or None."""
    if args.quick and section in QUICK_LEAVES_OUT and section not in args.sections_given:
        return QUICK_LEAVES_OUT[section]
    return None


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.0f} s] {message}", file=sys.stderr, flush=True)


class Models:
    """The tiny model and the SD-1.5-sized one, built on first use into one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._tiny: Path | None = None
        self._sd15: Path | None = None

    @property
    def tiny(self) -> Path:
        if self._tiny is None:
            path = self.folder / "tiny-sd"
            if not (path / "model_index.json").is_file():
                timing.import_tiny_models().build_tiny_sd(path)
            self._tiny = path
        return self._tiny

    @property
    def sd15(self) -> Path:
        if self._sd15 is None:
            path = self.folder / "sd15-sized"
            if not (path / "model_index.json").is_file():
                log("building the SD-1.5-sized model (random weights, 4.3 GB) ...")
                shutil.rmtree(path, ignore_errors=True)
                sized_models.build_sd15_sized(path)
                gc.collect()
            self._sd15 = path
        return self._sd15


def section_engine(models: Models, args: argparse.Namespace, keep: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": []}
    tiny_runs = 3 if args.quick else max(args.runs * 2, 7)
    log("engine vs raw: tiny model")
    subjects = engine_vs_raw.Subjects(models.tiny)
    for size in (64,) if args.quick else (64, 256):
        case = engine_vs_raw.measure(subjects, size=size, steps=4, runs=tiny_runs, warmup=2)
        case["model"] = "tiny SD (tools/tiny_models.py)"
        out["cases"].append(case)
    subjects.free()
    if args.quick:
        out["note"] = "--quick: the SD-1.5-sized case is left out"
        return out
    log("engine vs raw: SD-1.5-sized model at 256x256, 2 steps")
    subjects = engine_vs_raw.Subjects(models.sd15, ("engine", "raw", "engine FP32"))
    case = engine_vs_raw.measure(subjects, size=256, steps=2, runs=args.runs, warmup=1)
    case["model"] = "SD-1.5-sized, random weights (bench/sized_models.py)"
    out["cases"].append(case)
    bf16 = case["engine_dtype"]["engine"] == "bfloat16"
    for component in ("unet", "vae"):
        keep[component] = {
            "nchw": subjects.module("raw", component),
            "channels_last": subjects.module("engine FP32", component),
            "bf16": subjects.module("engine", component) if bf16 else None,
        }
    keep["subjects"] = subjects  # owns those UNets; freed after the roofline
    return out


def section_roofline(models: Models, args: argparse.Namespace, keep: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"bf16_native": timing.bf16_native()}
    if args.quick:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        out["model"] = "tiny SD UNet (--quick; the headline run uses the SD-1.5-sized UNet)"
        unets: dict[str, Any] = {"nchw": UNet2DConditionModel.from_pretrained(models.tiny / "unet").eval()}
        vaes: dict[str, Any] = {"nchw": AutoencoderKL.from_pretrained(models.tiny / "vae").eval()}
    else:
        out["model"] = "SD-1.5-sized UNet (860 M parameters, random weights)"
        unets = {k: v for k, v in (keep.get("unet") or {}).items() if v is not None}
        vaes = {k: v for k, v in (keep.get("vae") or {}).items() if v is not None}
        if "nchw" not in unets:
            log("roofline: building the SD-1.5-sized UNet and VAE in memory")
            parts = sized_models.sd15_components(Path(tempfile.mkdtemp(dir=models.folder)))
            unets, vaes = {"nchw": parts["unet"]}, {"nchw": parts["vae"]}
    flops = roofline.unet_flops(dict(unets["nchw"].config))
    log(f"roofline: {flops['gflop']} GFLOP per step")
    runs = 1 if args.quick else args.runs
    out.update(roofline.measure(unets, runs=runs, warmup=1, log=log, flops=flops))
    default = unets.get("bf16") if out["bf16_native"] else unets.get("channels_last")
    if default is not None:
        log("roofline: the default precision's step and its kernels alone")
        out["layers"] = layer_times.measure(default, roofline.unet_step(default),
                                            step_gflop=flops["gflop"], runs=runs)
    if default is not None and not args.quick:
        log("roofline: the same at 512x512 (SD 1.5's own size)")
        gflop_512 = roofline.unet_flops(dict(default.config), size=512)["gflop"]
        out["default_at_512"] = layer_times.measure(default, roofline.unet_step(default, 512),
                                                    step_gflop=gflop_512, runs=runs)
    log("roofline: VAE decode")
    out["vae_decode"] = roofline.measure_vae(vaes, runs=runs, warmup=1)
    return out


def section_few_step(models: Models, args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        log("few-step: tiny model, 64x64")
        result = few_step.measure(models.tiny, size=64, steps=2, runs=2)
        result["model"] = "tiny SD (--quick; the headline run uses the SD-1.5-sized model)"
        return result
    log("few-step: SD-1.5-sized, LCM, 4 steps, 256x256, guidance 1")
    return few_step.measure(models.sd15, size=256, steps=4, runs=args.runs)


def section_compile(models: Models, args: argparse.Namespace, scratch: Path, unet_gflop: float | None) -> dict:
    """Two fresh processes on one cache folder: cold (empty) then warm, as two Blender sessions."""
    script = str(BENCH / "compile_cache.py")
    model, size, steps = (models.tiny, 64, 2) if args.quick else (models.sd15, 256, 2)
    cache = scratch / "compile-cache"
    out: dict[str, Any] = {"model": "tiny SD" if args.quick else "SD-1.5-sized", "size": size, "steps": steps}
    for name in ("cold", "warm"):
        log(f"compile: {name} (a new process{', empty cache: minutes' if name == 'cold' else ''})")
        path = scratch / f"compile-{name}.json"
        command = [sys.executable, script, "--model", str(model), "--cache", str(cache), "--out", str(path),
                   "--size", str(size), "--steps", str(steps), "--runs", str(2 if args.quick else args.runs)]
        out[name] = _run_json(command, path, 3600)
    if unet_gflop and not args.quick:
        # UNet GFLOP/s inside a Generate: one step = the UNet (batch 2) + the scheduler's element-wise update
        out["unet_gflops"] = {name: round(unet_gflop / step, 1) for name, step in out["warm"]["step_s"].items()}
    return out


def section_avx2(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    if left_out("avx2", args):
        return {"skipped": left_out("avx2", args)}
    capability = timing.machine().get("cpu_capability")
    if capability != "AVX512":
        return {"skipped": f"this CPU runs {capability} already: section 2 measures it directly"}
    log("avx2: the fp32 UNet step with torch held to AVX2 (a child process; compiles: minutes)")
    path = scratch / "avx2.json"
    return _run_json([sys.executable, str(BENCH / "isa_limit.py"), "--isa", "avx2", "--out", str(path),
                      "--runs", str(args.runs)], path, 3600)


def _run_json(command: list[str], out: Path, timeout: float) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command[:2])} failed ({done.returncode}):\n" + "\n".join(tail))
    return json.loads(out.read_text())


def section_blender(models: Models, args: argparse.Namespace, memory: bool, scratch: Path) -> dict[str, Any]:
    script = str(BENCH / "blender_path.py")
    enables = []
    for i in range(1 if args.quick else 5):
        path = scratch / f"enable-{i}.json"
        enables.append(_run_json([sys.executable, script, "--enable-only", "--out", str(path)], path, 300))
    log("blender: generate cold and warm, pixel bridge" + (", SD-1.5-sized memory" if memory and not args.quick else ""))
    path = scratch / "blender.json"
    command = [sys.executable, script, "--out", str(path), "--tiny-model", str(models.tiny),
               "--runs", str(3 if args.quick else max(args.runs * 2, 7))]
    if memory and not args.quick:
        command += ["--sd-model", str(models.sd15)]
    if args.quick:  # the Whole Object main-thread figures' code path on a small mesh and texture
        command += ["--object-sizes", "256:3", "--object-levels", "1"]
    result = _run_json(command, path, 900)
    result["enable_cold_s"] = {
        "median": round(statistics.median(e["enable_s"] for e in enables), 4),
        "samples": [round(e["enable_s"], 4) for e in enables],
    }
    result["import_bpy_s"] = round(statistics.median(e["import_bpy_s"] for e in enables), 3)
    return result


def section_geometry(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    log("geometry: depth/normal images, z-buffer vs BVH rays vs Cycles")
    path = scratch / "geometry.json"
    command = [sys.executable, str(BENCH / "geometry_passes.py"), "--out", str(path), "--runs", str(args.runs)]
    if args.quick:
        command += ["--quick", "--sizes", "128"]
    return _run_json(command, path, 1200)


def section_bake(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:  # a smoke run: the code path, not the headline figure
        log("bake: --quick: 512² texture from 8 views of 256²")
        return object_bake.measure(size=512, views=8, view_size=256, runs=1)
    log("bake: 2048² texture from 8 views of 512²")
    return object_bake.measure(size=2048, views=8, view_size=512, runs=max(args.runs - 1, 3))


def section_consistency(models: Models, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    log("consistency: Whole Object views' disagreement per method, through the operator in a bpy process")
    controlnet = controlnet_overhead.build_controlnet(models.folder / "tiny-controlnet", models.tiny)
    path = scratch / "consistency.json"
    command = [sys.executable, str(BENCH / "consistency.py"), "--out", str(path), "--tiny-model", str(models.tiny),
               "--controlnet", str(controlnet)] + (["--quick"] if args.quick else [])
    return _run_json(command, path, 3600)


def section_gpu(models: Models, args: argparse.Namespace) -> dict[str, Any]:
    reason = gpu.skip_reason()
    if reason is not None and not args.gpu_dry_run:
        log(f"gpu: skipped - {reason}")
        return {"skipped": reason}
    log("gpu: " + ("dry run on the CPU with the tiny model" if reason else "raw vs engine on CUDA"))
    return gpu.run(scratch=models.folder, quick=args.quick, runs=1 if args.quick else max(args.runs, 3),
                   compile_=not args.quick or reason is not None, dry_run=reason is not None, log=log)


def section_controlnet(models: Models, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": []}
    log("controlnet: tiny model at 64x64")
    tiny_cn = controlnet_overhead.build_controlnet(models.folder / "tiny-controlnet", models.tiny)
    case = controlnet_overhead.measure(models.tiny, tiny_cn, size=64, steps=4, runs=3 if args.quick else 7)
    case["model"] = "tiny SD + tiny ControlNet (tools/tiny_models.py)"
    out["cases"].append(case)
    if args.quick:
        out["note"] = "--quick: the SD-1.5-sized case is left out"
        return out
    log("controlnet: SD-1.5-sized model and ControlNet at 256x256, 2 steps")
    sized_cn = controlnet_overhead.build_controlnet(models.folder / "sd15-controlnet", models.sd15, real_size=True)
    case = controlnet_overhead.measure(models.sd15, sized_cn, size=256, steps=2, runs=args.runs)
    case["model"] = "SD-1.5-sized + SD-1.5-ControlNet-sized, random weights"
    out["cases"].append(case)
    return out


def section_color_match(models: Models, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    log("color_match: GRID and SEQUENTIAL views' disagreement with Color Match None / Reinhard / Histogram")
    controlnet = controlnet_overhead.build_controlnet(models.folder / "tiny-controlnet", models.tiny)
    path = scratch / "color_match.json"
    command = [sys.executable, str(BENCH / "color_match.py"), "--out", str(path), "--tiny-model", str(models.tiny),
               "--controlnet", str(controlnet)] + (["--quick"] if args.quick else [])
    return _run_json(command, path, 1200)
def section_sync(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    log("sync: SYNC per synchronised step, " + ("tiny model, 6 views of 64²" if args.quick else
                                               "SD-1.5-sized, 6 views of 512² (minutes)"))
    path = scratch / "sync.json"
    command = [sys.executable, str(BENCH / "sync_step.py"), "--out", str(path)] + (["--quick"] if args.quick else [])
    result = _run_json(command, path, 3600)
    if args.quick:
        result["note"] = "--quick: tiny model at 64² (the code path; the headline run is SD-1.5-sized at 512²)"
    return result


def section_insight(models: Models, args: argparse.Namespace) -> dict[str, Any]:
    log("insight: Generate with the filmstrip / attention maps present but off, and each one on")
    if args.quick:
        return insight.measure(models.tiny, size=64, steps=2, runs=1, warmup=0)
    return insight.measure(models.tiny, size=128, steps=4, runs=7)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, few runs (about a minute)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--runs", type=int, default=4, help="measured rounds for the SD-1.5-sized figures")
    parser.add_argument("--model-dir", help="keep the built models here and reuse them next time (4.3 GB)")
    parser.add_argument("--out", default=str(BENCH), help="folder for results.json and results.md")
    parser.add_argument("--update", action="store_true", help="measure only --sections and keep the other sections "
                        "of the results.json already in --out (results.md says which section is from which run)")
    parser.add_argument("--gpu-dry-run", action="store_true", help="without CUDA: run the GPU section's code on "
                        "the CPU with the tiny model (checks the code; its figures mean nothing)")
    args = parser.parse_args(argv)
    selected = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.sections_given = selected if "--sections" in (argv if argv is not None else sys.argv[1:]) else []
    unknown = sorted(set(selected) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")

    import torch  # noqa: F401 - the engine sections need it; failing here is clearer

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch_owner = None
    if args.model_dir:
        model_dir = Path(args.model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
    else:
        scratch_owner = tempfile.TemporaryDirectory(prefix="lt_bench_")
        model_dir = Path(scratch_owner.name)
    models = Models(model_dir)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "machine": timing.machine(),
        "load_average_start": timing.load_average(),
        "sections": {},
    }
    previous_file = out_dir / "results.json"
    if args.update and previous_file.exists():
        previous = json.loads(previous_file.read_text())
        dates = previous.get("section_dates") or {name: previous["date"] for name in previous["sections"]}
        measured = set(selected) | ({"blender"} if "memory" in selected else set())  # memory is in blender's
        results["sections"] = {k: v for k, v in previous["sections"].items() if k not in measured}
        results["section_dates"] = {k: v for k, v in dates.items() if k in results["sections"]}
    keep: dict[str, Any] = {}

    def write(partial: bool) -> None:
        """Write what is measured so far: a run cut short (it takes long on a busy machine) keeps its sections."""
        results["partial"] = partial
        results["load_average_end"] = timing.load_average()
        results["runtime_s"] = round(time.perf_counter() - _T0, 1)
        if "section_dates" in results:
            for name in results["sections"]:
                results["section_dates"].setdefault(name, results["date"])
        results["summary"] = report.summary(results)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (out_dir / "results.md").write_text(report.render(results))

    try:
        with tempfile.TemporaryDirectory(prefix="lt_bench_json_") as scratch:
            if "engine" in selected:
                results["sections"]["engine"] = section_engine(models, args, keep)
                write(partial=True)
            if "roofline" in selected:
                results["sections"]["roofline"] = section_roofline(models, args, keep)
                write(partial=True)
            if keep.get("subjects") is not None:
                keep["subjects"].free()
            keep.clear()
            gc.collect()
            if "few_step" in selected:
                results["sections"]["few_step"] = section_few_step(models, args)
                write(partial=True)
                gc.collect()
            if "blender" in selected or "memory" in selected:
                results["sections"]["blender"] = section_blender(models, args, "memory" in selected, Path(scratch))
                write(partial=True)
            if "gpu" in selected:
                results["sections"]["gpu"] = section_gpu(models, args)
                write(partial=True)
            if "compile" in selected:
                if left_out("compile", args):
                    results["sections"]["compile"] = {"skipped": left_out("compile", args)}
                else:
                    roof = results["sections"].get("roofline") or {}
                    gflop = roof.get("flops", {}).get("gflop") if not args.quick else None
                    results["sections"]["compile"] = section_compile(models, args, Path(scratch), gflop)
            if "geometry" in selected:
                results["sections"]["geometry"] = section_geometry(args, Path(scratch))
            if "bake" in selected:
                results["sections"]["bake"] = section_bake(args)
                log("bake: Whole Object diffusion per view (GRID and SEQUENTIAL), tiny model")
                per_view = {"tiny": object_bake.generation_per_view(str(models.tiny), views=4, view_size=64, steps=2,
                                                                    runs=1 if args.quick else 3)}
                if not args.quick:
                    log("bake: Whole Object diffusion per view, SD-1.5-sized, 4 views of 256², 2 steps")
                    per_view["sd15_sized"] = object_bake.generation_per_view(str(models.sd15), views=4,
                                                                             view_size=256, steps=2, runs=2)
                results["sections"]["bake"]["generation_per_view"] = per_view
            if "controlnet" in selected:
                results["sections"]["controlnet"] = section_controlnet(models, args)
            if "insight" in selected:
                results["sections"]["insight"] = section_insight(models, args)
            if "scan" in selected:
                log("scan: 200 model files, headers only")
                results["sections"]["scan"] = model_scan.run(200, 1 if args.quick else 5)
            if "upscale" in selected:
                log("upscale: tiled redraw vs one untiled img2img, and the blend alone")
                results["sections"]["upscale"] = upscale.run(models.folder, args.quick,
                                                             None if args.quick else models.sd15)
                write(partial=True)
            if "consistency" in selected:
                results["sections"]["consistency"] = section_consistency(models, args, Path(scratch))
            if "maps" in selected:
                log("maps: every material map against one generation, and the peak RSS of a full PBR run")
                results["sections"]["maps"] = material_maps.run(models.folder, args.quick,
                                                                None if args.quick else models.sd15)
                write(partial=True)
            if "avx2" in selected:
                results["sections"]["avx2"] = section_avx2(args, Path(scratch))
            if "color_match" in selected:
                results["sections"]["color_match"] = section_color_match(models, args, Path(scratch))
            if "reference" in selected:
                log("reference: a reference image's cost per generation; SEQUENTIAL with/without view 1 as reference")
                results["sections"]["reference"] = reference_images.measure(models.folder, quick=args.quick,
                                                                            runs=max(args.runs, 5))
                write(partial=True)
            if "sync" in selected:
                results["sections"]["sync"] = section_sync(args, Path(scratch))
    finally:
        if scratch_owner is not None:
            scratch_owner.cleanup()
    write(partial=False)
    log(f"done in {results['runtime_s']} s: {out_dir / 'results.md'}")
    print(report.render_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
