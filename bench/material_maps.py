"""Material maps (issue 30): each map's cost at 768² against one generation, and the peak memory of a full PBR run.

    python bench/material_maps.py [--quick] [--model-dir DIR] [--sd15 DIR]

Run by ``bench/run.py`` as the section ``maps``, on the CPU in the default precision (Auto). Full: Marigold-sized
random models (``build_marigold_sized``: the SD 2 UNet with Marigold's channels - the intrinsics model's 12 in /
8 out, the normals model's 8 / 4 -, the SD VAE, the OpenCLIP-H text encoder; saved fp16 like the real downloads,
4 steps and 768 px in their configs as marigold-*-v1-1 ship) make every map of a 768² image, against one
default Generate of the SD-1.5-sized model at 512² (25 steps, guidance 7.5). Each in its own process: one warm-up
(1 step: loading, first-step costs), then the timed run; its peak RSS is the process's (loading included), the
memory a full PBR run needs. ``--quick``: the tiny models, 128² maps against a 64² tiny generation, no warm-up.

Albedo, roughness and metallic come from one intrinsics run (their cost is that run's, together); normal from
the normals run; height is the normals run plus its integration (``height_s``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import timing  # noqa: E402

MARIGOLD_STEPS = 4  # marigold-*-v1-1's default_denoising_steps
MARIGOLD_RESOLUTION = 768


def build_marigold_sized(folder: Path, kind: str, *, seed: int = 0) -> Path:
    """A random-weight Marigold pipeline (``intrinsics``: the appearance model's targets; ``normals``) with the
    real models' layers, saved fp16 to ``folder``."""
    import torch
    from diffusers import DDIMScheduler, MarigoldIntrinsicsPipeline, MarigoldNormalsPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    import sized_models

    targets = 2 if kind == "intrinsics" else 1
    unet_config = {**sized_models.SD15_UNET, "cross_attention_dim": 1024, "attention_head_dim": (5, 10, 20, 20),
                   "use_linear_projection": True, "in_channels": 4 * (1 + targets), "out_channels": 4 * targets,
                   "sample_size": 96}
    tokenizer = sized_models._tokenizer(folder / "_scratch")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config).eval()
    torch.manual_seed(seed + 1)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**sized_models.SD_VAE, scaling_factor=0.18215).eval()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(sized_models._text_config(tokenizer, sized_models.OPENCLIP_H)).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, prediction_type="v_prediction", timestep_spacing="trailing")
    common = {"unet": unet, "vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": tokenizer,
              "default_denoising_steps": MARIGOLD_STEPS, "default_processing_resolution": MARIGOLD_RESOLUTION}
    if kind == "intrinsics":
        targets_properties = timing.import_tiny_models().MARIGOLD_APPEARANCE_TARGETS
        pipe = MarigoldIntrinsicsPipeline(**common, prediction_type="intrinsics", target_properties=targets_properties)
    else:
        pipe = MarigoldNormalsPipeline(**common, prediction_type="normals", use_full_z_range=True)
    pipe.to(dtype=torch.float16)
    pipe.save_pretrained(folder)
    import shutil

    shutil.rmtree(folder / "_scratch", ignore_errors=True)
    return folder


def _image(size: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:size, 0:size] / size
    return np.clip(np.stack([0.5 + 0.3 * np.sin(9 * x), y, 0.5 + 0.3 * np.sin(20 * x * y)], -1), 0, 1).astype(np.float32)


def measure(kind: str, models: dict[str, str], size: int, steps: int, warm_up: bool) -> dict[str, Any]:
    """In this process: ``generate`` (one Generate of ``models['generate']``, ``size``², ``steps`` steps) or ``maps``
    (every map of a ``size``² image): a warm-up of 1 step where asked, then the timed run."""
    engine_api = timing.import_engine()
    engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    timing.reset_peak_rss()

    def run(run_steps: int | None) -> Any:
        if kind == "generate":
            request = engine_api.GenerationRequest(prompt="mossy stone wall", model=models["generate"], width=size,
                                                   height=size, steps=run_steps or steps, seed=1)
            return engine.generate(request, previews=False)
        request = engine_api.MaterialMapsRequest(image=_image(size), maps=engine_api.MAP_KINDS, seed=1,
                                                 pbr_model=models["intrinsics"], normals_model=models["normals"],
                                                 steps=run_steps)
        return engine.material_maps(request)

    if warm_up:
        run(1)
    seconds, cpu_share, result = timing.timed(lambda: run(None))
    peak = timing.peak_rss_mb()
    figures: dict[str, Any] = {"seconds": round(seconds, 3), "dtype": str(engine.dtype).removeprefix("torch."),
                               "size": size, "peak_rss_mb": None if peak is None else round(peak),
                               "cpu_share": round(cpu_share, 2)}
    if kind == "maps":
        figures.update(intrinsics_s=result.timings["intrinsics"], normals_s=result.timings["normals"],
                       height_s=result.timings["height"], steps=result.recipes["normal"]["pbr"]["steps"],
                       processing_size=result.recipes["normal"]["pbr"]["processing_size"])
    else:
        figures["steps"] = steps
    return figures


def _child(kind: str, models: dict[str, str], size: int, steps: int, warm_up: bool) -> dict[str, Any]:
    """``measure`` in a process of its own (its peak RSS alone); ``--quick`` runs it here."""
    if not warm_up:
        try:
            return measure(kind, models, size, steps, warm_up=False)
        except Exception as error:  # noqa: BLE001 - one kind failing must not lose the other
            return {"error": f"{type(error).__name__}: {error}"}
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import json, material_maps; "
            f"print(json.dumps(material_maps.measure({kind!r}, {models!r}, {size}, {steps}, True)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(models_folder: Path, quick: bool, sd15: Path | None = None) -> dict[str, Any]:
    """The section's figures; the Marigold-sized models are built into ``models_folder`` (2 x 2.6 GB)."""
    tiny_models = timing.import_tiny_models()
    if quick or sd15 is None:
        models = {}
        for name, build in (("generate", lambda p: tiny_models.build_tiny_sd(p)),
                            ("intrinsics", lambda p: tiny_models.build_tiny_marigold(p, seed=21)),
                            ("normals", lambda p: tiny_models.build_tiny_marigold(p, kind="normals", seed=31))):
            path = models_folder / f"tiny-{name}"
            if not (path / "model_index.json").is_file():
                build(path)
            models[name] = str(path)
        label, map_size, generate_size, generate_steps = "tiny", 128, 64, 4
    else:
        models = {"generate": str(sd15)}
        for kind in ("intrinsics", "normals"):
            path = models_folder / f"marigold-{kind}-sized"
            if not (path / "model_index.json").is_file():
                build_marigold_sized(path, kind)
            models[kind] = str(path)
        label, map_size, generate_size, generate_steps = "sized", MARIGOLD_RESOLUTION, 512, 25
    generate = _child("generate", models, generate_size, generate_steps, warm_up=not quick)
    maps = _child("maps", models, map_size, 0, warm_up=not quick)
    figures: dict[str, Any] = {"models": label, "generate": generate, "maps": maps}
    if "seconds" in generate and "seconds" in maps:
        one = generate["seconds"]
        figures["over_one_generation"] = {
            "albedo + roughness + metallic (one intrinsics run)": round(maps["intrinsics_s"] / one, 3),
            "normal": round(maps["normals_s"] / one, 3),
            "height (normals run + integration)": round((maps["normals_s"] + maps["height_s"]) / one, 3),
            "all five maps": round(maps["seconds"] / one, 3),
        }
    return figures


def render(figures: dict[str, Any]) -> list[str]:
    generate, maps = figures.get("generate", {}), figures.get("maps", {})
    sized = figures.get("models") == "sized"
    lines = ["## Material maps (issue 30): each map's cost against one generation (CPU, the default precision)", "",
             ("Marigold-sized random models (SD 2 UNet, fp16 files, 4 steps, every map of a 768² image) against one "
              "default Generate of the SD-1.5-sized model at 512² (25 steps, guidance 7.5)." if sized else
              "Tiny models (--quick: a smoke run, not the headline figures): 128² maps against a 64² generation."),
             ("Each in its own process after a 1-step warm-up; peak RSS = the whole process (loading included)."
              if sized else "In the benchmark's process, no warm-up: loading and first calls included."), ""]
    for name, row in (("generation", generate), ("maps", maps)):
        if "error" in row:
            lines.append(f"- {name} failed: {row['error']}")
    if "seconds" in generate and "seconds" in maps:
        lines += ["| run | seconds | x one generation |", "|---|---:|---:|",
                  f"| one generation ({generate['size']}², {generate['steps']} steps, {generate['dtype']}) | "
                  f"{generate['seconds']} | 1 |"]
        shares = (generate.get("cpu_share"), maps.get("cpu_share"))
        for name, ratio in figures["over_one_generation"].items():
            seconds = {"normal": maps["normals_s"], "all five maps": maps["seconds"]}.get(
                name, maps["normals_s"] + maps["height_s"] if name.startswith("height") else maps["intrinsics_s"])
            lines.append(f"| {name} | {round(seconds, 2)} | {ratio} |")
        lines += ["", f"- Peak RSS of a full PBR run at {maps['size']}² (both models loaded, {maps['dtype']}): "
                      f"{maps['peak_rss_mb']} MB; of the generation: {generate['peak_rss_mb']} MB.",
                  f"- Height integration alone: {maps['height_s']} s (numpy FFT at {maps['size']}²): a depth model "
                  "instead would cost another Marigold run (the normals run above).",
                  f"- CPU share (CPU time / (wall x threads); < 1: other processes had the cores): generation "
                  f"{shares[0] if shares[0] is not None else '–'}, maps {shares[1] if shares[1] is not None else '–'}."]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--sd15", type=Path, help="an SD-1.5-sized model folder (bench/run.py builds one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lt_bench_maps_") as scratch:
        folder = args.model_dir or Path(scratch)
        figures = run(folder, args.quick, args.sd15)
    print(json.dumps(figures, indent=2))
    print("\n".join(render(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
