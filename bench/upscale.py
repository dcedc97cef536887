"""Upscale figures (issue 16): time per output megapixel, peak memory tiled vs untiled, the blend's overhead.

    python bench/upscale.py [--quick] [--model-dir DIR]

Run by ``bench/run.py`` as the section ``upscale`` (each measurement in a child process, so the
peak RSS of one does not hide the other's), in the default precision (Auto). Tiny model: x2 of 128 px
to 256 px with 128-px tiles; SD-1.5-sized random weights (skipped with ``--quick``): x2 of 384 px to
768 px in its native 512-px tiles (2 x 2) vs one img2img at 768², 20 steps x strength 0.35 = 7 steps
per tile, no ControlNet (there is no sized tile ControlNet to load), so the figure is the img2img
redraw's cost.

The dedicated x4 upscaler (``x4_tiled`` / ``x4_untiled``): the tiny one at x4 of 64 px with 128-px output
tiles vs one tile of the whole image; the x4-upscaler-sized one (random weights, its real layers:
``sized_models.build_x4_upscaler_sized``) at x4 of 192 px (768 px out) in its native 128-px input tiles
(2 x 2) vs one untiled run (its latents at 192², a 768² decode), 2 steps (a real run takes 20-75).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import timing  # noqa: E402


def _source(size: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:size, 0:size] / size
    return np.clip(np.stack([x, y, 0.5 + 0.3 * np.sin(20 * x)], axis=-1), 0, 1).astype(np.float32)


def measure(kind: str, model: str, size: int, factor: int, tile: int, steps: int,
            warm_up: bool = True) -> dict[str, Any]:
    """In this process: one warm-up (``--quick``: none, the time then includes loading) and one timed run of
    ``kind`` (``tiled``/``untiled``/``blend``/``x4_tiled``/``x4_untiled``)."""
    import torch

    engine_api = timing.import_engine()
    from latent_textures.engine import tiles  # registered by import_engine

    engine = engine_api.Engine(engine_api.EngineOptions(device="CPU"))
    source = _source(size)
    out_size = size * factor

    def tiled() -> Any:
        request = engine_api.UpscaleRequest(image=source, model=model, prompt="stone wall", factor=factor,
                                            strength=0.35, steps=steps, seed=1, tile_size=tile,
                                            control="NONE")
        return engine.upscale(request)

    def untiled() -> Any:
        big = tiles.resize(source, factor, wrap_x=False, wrap_y=False)
        request = engine_api.GenerationRequest(prompt="stone wall", model=model, mode="IMG2IMG", init_image=big,
                                               strength=0.35, width=out_size, height=out_size, steps=steps, seed=1)
        return engine.generate(request)

    def x4(tile_size: int) -> Any:
        request = engine_api.UpscaleRequest(image=source, model="", method="X4_UPSCALER", upscaler_model=model,
                                            prompt="stone wall", factor=factor, steps=steps, seed=1,
                                            tile_size=tile_size, control="NONE")
        return engine.upscale(request)

    def blend_only() -> Any:
        big = tiles.resize(source, factor, wrap_x=False, wrap_y=False)
        layout = tiles.layout(out_size, out_size, tile, 64, False, False)
        return tiles.redraw(big, layout, lambda t, pixels: pixels, wrap_x=False, wrap_y=False)

    run = {"tiled": tiled, "untiled": untiled, "blend": blend_only,
           "x4_tiled": lambda: x4(tile), "x4_untiled": lambda: x4(out_size)}[kind]
    torch.manual_seed(0)
    if warm_up:
        run()  # load, first-step costs
    timing.reset_peak_rss()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    if kind.startswith("x4"):
        side = (tile if kind == "x4_tiled" else out_size) // 4
        layout = tiles.layout(size, size, side, min(16, side - 1), False, False)
    else:
        layout = tiles.layout(out_size, out_size, tile, 64, False, False) if kind != "untiled" else [None]
    peak = timing.peak_rss_mb()
    return {"seconds": round(seconds, 3), "dtype": str(engine.dtype).removeprefix("torch."), "output_mp": round(out_size * out_size / 1e6, 4),
            "seconds_per_mp": round(seconds / (out_size * out_size / 1e6), 3), "tiles": len(layout),
            "peak_rss_mb": None if peak is None else round(peak)}


def _child(kind: str, model: str, size: int, factor: int, tile: int, steps: int,
           warm_up: bool = True) -> dict[str, Any]:
    """``measure`` in a process of its own (its peak RSS alone); ``--quick`` (no warm-up: a smoke run, its
    figures not the headline ones) runs it here, sparing each kind a process start (torch and diffusers)."""
    if not warm_up:
        try:
            return measure(kind, model, size, factor, tile, steps, warm_up=False)
        except Exception as error:  # noqa: BLE001 - one kind failing must not lose the rest, as in a child
            return {"error": f"{type(error).__name__}: {error}"}
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import json, upscale; "
            f"print(json.dumps(upscale.measure({kind!r}, {model!r}, {size}, {factor}, {tile}, {steps}, {warm_up})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(models_folder: Path, quick: bool, sd15: Path | None = None) -> dict[str, Any]:
    """Every figure of the section; the x4-upscaler-sized model is built into ``models_folder`` (1.9 GB)."""
    tiny = models_folder / "tiny-sd"
    if not (tiny / "model_index.json").is_file():
        timing.import_tiny_models().build_tiny_sd(tiny)
    figures: dict[str, Any] = {"tiny": {}}
    for kind in ("tiled", "untiled", "blend"):
        figures["tiny"][kind] = _child(kind, str(tiny), 128, 2, 128, 4, warm_up=not quick)
    tiled, blend = figures["tiny"]["tiled"], figures["tiny"]["blend"]
    if "seconds" in tiled and "seconds" in blend:
        figures["tiny"]["blend_share_of_tiled"] = round(blend["seconds"] / tiled["seconds"], 4)
    if not quick and sd15 is not None:
        figures["sd15_sized"] = {kind: _child(kind, str(sd15), 384, 2, 512, 20) for kind in ("tiled", "untiled")}
    tiny_x4 = models_folder / "tiny-x4"
    if not (tiny_x4 / "model_index.json").is_file():
        timing.import_tiny_models().build_tiny_x4_upscaler(tiny_x4)
    figures["tiny x4 upscaler"] = {kind: _child(kind, str(tiny_x4), 64, 4, 128, 4, warm_up=not quick)
                                   for kind in ("x4_tiled", "x4_untiled")}
    if not quick:
        sized_x4 = models_folder / "x4-upscaler-sized"
        if not (sized_x4 / "model_index.json").is_file():
            import sized_models

            sized_models.build_x4_upscaler_sized(sized_x4)
        figures["x4-upscaler-sized"] = {kind: _child(kind, str(sized_x4), 192, 4, 512, 2)
                                        for kind in ("x4_tiled", "x4_untiled")}
    return figures


def render(figures: dict[str, Any]) -> list[str]:
    lines = ["## Upscale (issue 16): tiled vs untiled (CPU, the default precision)", "",
             "`tiled`/`untiled`: the tiled-diffusion redraw vs one img2img at the output size; `blend`: the tiler "
             "alone (an identity redraw); `x4_tiled`/`x4_untiled`: the dedicated x4 upscaler in its tiles vs "
             "one run over the whole image. One warm-up, then one timed run, each in its own process.", "",
             "| model | kind | output | dtype | tiles | seconds | s / output MP | peak RSS MB |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for model, kinds in figures.items():
        for kind in ("tiled", "untiled", "blend", "x4_tiled", "x4_untiled"):
            row = kinds.get(kind)
            if not row:
                continue
            if "error" in row:
                lines.append(f"| {model} | {kind} | failed: {row['error']} | | | | | |")
                continue
            lines.append(f"| {model} | {kind} | {row['output_mp']} MP | {row.get('dtype', '')} | {row['tiles']} | "
                         f"{row['seconds']} | {row['seconds_per_mp']} | {row['peak_rss_mb']} |")
    lines.append("")
    for model, kinds in figures.items():
        if "blend_share_of_tiled" in kinds:
            lines.append(f"- {model}: blending the tiles is {kinds['blend_share_of_tiled']:.1%} of the tiled run")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--sd15", type=Path, help="an SD-1.5-sized model folder (bench/run.py builds one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lt_bench_upscale_") as scratch:
        folder = args.model_dir or Path(scratch)
        print(json.dumps(run(folder, args.quick, args.sd15), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
