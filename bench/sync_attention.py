"""SYNC's optional cross-view attention (``engine/sync_attention.py``): does it pay?

Not in ``make bench`` (run alone: ``python bench/sync_attention.py [--quick]``). Two measurements:

1. *Consistency*, tiny random model: a UV sphere seen by automatic views (``geometry.views.place_views``),
   synchronised through its latent texture (DPM++ 2M) with attention NONE / NEIGHBOURS /
   NEIGHBOURS_REFERENCE, at sync fraction 1.0 and 0.8; the views' disagreement on the surface they share
   (``geometry.latent_sync.view_disagreement``: latents, and the decoded pixels). Random weights paint
   noise: this shows whether attending across views brings the views closer by itself, never whether the
   texture looks better - that needs trained weights.
2. *Cost*: the time of the synchronised run (tiny model) and of one UNet call of SD 1.5's size (random
   weights, ``sized_models.SD15_UNET``) on the views x guidance batch, each mode against NONE as a paired
   ratio in the same rounds (the extended keys/values triple the self-attention's K/V projections and its
   attention; the reference doubles that layer again in the early steps).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: bench/ holds the helper modules

import timing  # noqa: E402
from object_bake import uv_sphere  # noqa: E402

MODES = ("NONE", "NEIGHBOURS", "NEIGHBOURS_REFERENCE")


def _scene(views: int, pixels: int) -> dict[str, Any]:
    geometry = timing._load_package_loader().import_subpackage("geometry")
    mod = {name: importlib.import_module(f"{geometry.__name__}.{name}")
           for name in ("views", "latent_sync", "uv_raster", "raster", "camera", "bake")}
    uv, positions, normals = uv_sphere(24, 12)
    placed = mod["views"].place_views(np.zeros(3), 1.0, views, pixels, pixels)
    cameras = [view.camera() for view in placed]
    latent = pixels // 8
    small = [mod["camera"].ViewCamera(c.world_matrix, c.projection, latent, latent, c.ortho) for c in cameras]
    surfaces = [mod["latent_sync"].latent_surface(c, positions, uv, corner_normals_world=normals) for c in small]
    size = mod["latent_sync"].latent_texture_size(surfaces, 256)
    texels = mod["uv_raster"].rasterize_uv_triangles(uv, positions, normals, size)
    depths = [mod["raster"].rasterize(c, positions).depth for c in small]
    return dict(mod=mod, uv=uv, positions=positions, normals=normals, cameras=cameras, small=small, texels=texels,
                depths=depths, bake=mod["latent_sync"].LatentBake(small, depths, [[texels]]),
                views=[mod["latent_sync"].latent_view(s, size) for s in surfaces], size=size)


def consistency(model: Path, *, views: int, pixels: int, steps: int, runs: int) -> dict[str, Any]:
    import torch
    from diffusers import StableDiffusionPipeline

    engine_api = timing.import_engine()
    sync = importlib.import_module(engine_api.__name__ + ".sync")
    schedulers = importlib.import_module(engine_api.__name__ + ".schedulers")
    scene = _scene(views, pixels)
    mod = scene["mod"]
    pipe = StableDiffusionPipeline.from_pretrained(str(model), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    def run(mode: str, fraction: float) -> Any:
        pipe.scheduler = schedulers.make_scheduler("DPM_SOLVER_MULTISTEP", pipe.scheduler.config, steps)
        latents, _ = sync.run_views(pipe, scene["views"], bake=scene["bake"], prompt="a painted globe",
                                    generator=torch.Generator().manual_seed(3), steps=steps, guidance_scale=7.0,
                                    fraction=fraction, attention=mode)
        return latents

    full_texels = mod["uv_raster"].rasterize_uv_triangles(scene["uv"], scene["positions"], scene["normals"], 256)
    full_depths = [mod["raster"].rasterize(c, scene["positions"]).depth for c in scene["cameras"]]
    disagreement = {}
    for fraction in (1.0, 0.8):
        for mode in MODES:
            latents = run(mode, fraction)
            with torch.no_grad():
                images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
            images = ((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
            bake_views = [mod["bake"].BakeView(c, lat, d) for c, lat, d in
                          zip(scene["small"], latents.permute(0, 2, 3, 1).numpy(), scene["depths"])]
            pixel_views = [mod["bake"].BakeView(c, image, d) for c, image, d in
                           zip(scene["cameras"], images, full_depths)]
            disagreement[f"{mode} @ {fraction}"] = {
                "latents": round(mod["latent_sync"].view_disagreement([scene["texels"]], bake_views,
                                                                      scene["bake"].settings), 4),
                "pixels": round(mod["latent_sync"].view_disagreement([full_texels], pixel_views), 4)}
    samples = timing.interleave({mode: (lambda mode=mode: run(mode, 0.8)) for mode in MODES}, runs=runs, warmup=1)
    plan = sync.make_plan(scene["views"], bake=scene["bake"])
    neighbours = importlib.import_module(engine_api.__name__ + ".sync_attention").neighbour_views(plan.texel.numpy())
    return {"views": views, "pixels": pixels, "steps": steps, "latent_texture_size": scene["size"],
            "neighbours": neighbours.tolist(),
            "disagreement": disagreement,
            "seconds_per_step": {mode: round(samples[mode].median / steps, 4) for mode in MODES},
            "ratio_to_none": {mode: round(timing.paired_ratio(samples, mode, "NONE"), 3) for mode in MODES[1:]}}


def sd15_unet_call(*, views: int, pixels: int, runs: int) -> dict[str, Any]:
    """One UNet call of SD 1.5's size on views x 2 (guidance), cross-view attention per mode (reference on)."""
    import torch
    from diffusers import UNet2DConditionModel

    import sized_models

    engine_api = timing.import_engine()
    sync_attention = importlib.import_module(engine_api.__name__ + ".sync_attention")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sized_models.SD15_UNET).eval()
    latent = pixels // 8
    sample = torch.randn(2 * views, 4, latent, latent)
    text = torch.randn(2 * views, 77, 768)
    ring = np.array([[i, (i - 1) % views, (i + 1) % views] for i in range(views)])

    def call(mode: str) -> Any:
        with torch.no_grad():
            if mode == "NONE":
                return unet(sample, 999, text).sample
            crossing = sync_attention.CrossViews(ring, mode, 1, lambda: 0)  # step 0: the reference is on
            with sync_attention.cross_view_attention(unet, crossing):
                return unet(sample, 999, text).sample

    samples = timing.interleave({mode: (lambda mode=mode: call(mode)) for mode in MODES}, runs=runs, warmup=1)
    return {"views": views, "pixels": pixels, "threads": timing.torch_threads(),
            "seconds": {mode: round(samples[mode].median, 3) for mode in MODES},
            "ratio_to_none": {mode: round(timing.paired_ratio(samples, mode, "NONE"), 3) for mode in MODES[1:]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer views, steps and rounds; no SD 1.5 call")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    tiny = timing._load_package_loader().import_tiny_models()
    with tempfile.TemporaryDirectory() as scratch:
        model = tiny.build_tiny_sd(Path(scratch) / "tiny-sd")
        result = {"machine": timing.cpu_model(),
                  "consistency": consistency(model, views=6 if args.quick else 8, pixels=256,
                                             steps=3 if args.quick else 6, runs=1 if args.quick else 3)}
    if not args.quick:
        result["sd15_unet_call"] = sd15_unet_call(views=6, pixels=256, runs=2)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
