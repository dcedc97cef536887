"""``upscale``: an image (a result in a .blend, or an image file) x2/x4 through ``bpy.ops.latent_textures.upscale()``."""

from __future__ import annotations

import argparse
import sys
import time

import bpy

from ..engine.upscale import MAX_TILE_SIZE, MIN_TILE_SIZE, check_tile_size
from ..engine.upscale_x4 import DEFAULT_NOISE_LEVEL, DEFAULT_UPSCALER, MAX_NOISE_LEVEL
from . import plan, support
from .arguments import RANDOM_SEED, add_command, output_paths, parse_seed, upper
from .errors import UsageError, say
from .images import image_argument
from .models import model_cache
from .run import run_operator
from .writer import write_outputs


def run_upscale(args) -> int:
    started = time.monotonic()
    out, texture_dir = output_paths(args)
    if not 0 <= args.strength <= 1:
        raise UsageError(f"--strength must be from 0 to 1; got {args.strength:g}")
    if not 0 <= args.noise_level <= MAX_NOISE_LEVEL:
        raise UsageError(f"--noise-level must be from 0 to {MAX_NOISE_LEVEL}; got {args.noise_level}")
    try:
        check_tile_size(args.tile_size, "--tile-size")
    except ValueError as error:
        raise UsageError(str(error)) from None
    plan.open_scene(args.blend)
    context = bpy.context
    settings = context.scene.latent_textures
    with model_cache(args.model_cache) as cache_dir:
        image = image_argument("--image", args.image) if args.image else settings.result_image
        if image is None:
            raise UsageError("--image is needed: the file has no result image to upscale")
        if args.model is not None or (args.strength > 0 and args.method == "TILED_DIFFUSION"):
            settings.model = plan.checked_model(args, settings, cache_dir)
        if args.prompt is not None:
            settings.prompt = args.prompt
        settings.use_random_seed = args.seed == RANDOM_SEED
        if args.seed not in (None, RANDOM_SEED):
            settings.seed = args.seed
        options = {
            "image": image.name,
            "factor": args.factor,
            "strength": args.strength,
            "seamless": args.seamless,
            "control_model": args.control_model or "",
            "tile_size": args.tile_size,
            "method": args.method,
            "upscaler_model": args.upscaler_model or "",
            "noise_level": args.noise_level,
        }
        progress = support.Progress(sys.stderr, 1)
        made = run_operator(context, bpy.ops.latent_textures.upscale, options, f"{image.name} x{args.factor}", 1, 1,
                            progress)
    for path in write_outputs(made, None, out, texture_dir):
        say(f"Wrote {path}")
    say(f"Done: 1 image in {support.format_seconds(time.monotonic() - started)}")
    return 0


def add_upscale_command(commands, prog: str) -> argparse.ArgumentParser:
    upscale = add_command(
        commands, "upscale",
        "make an image x2/x4 larger, the model redrawing it tile by tile (seamless textures stay seamless)",
        "Upscale with bpy.ops.latent_textures.upscale, the operator the panel runs: a Lanczos resize, then the "
        "model redraws overlapping tiles at a low strength, each held to the picture by a tile ControlNet; or, "
        "with --method X4_UPSCALER, the dedicated x4 upscaler model paints it large tile by tile. Files are "
        "written only when it succeeded.",
        epilog=(
            "examples:\n"
            f"  {prog} upscale --image textures/wall.png --factor 4 --texture-dir textures/\n"
            f"  {prog} upscale --blend crate.blend --image LT_oak_7 --factor 2 --out crate.blend\n"
            f"  {prog} upscale --image textures/wall.png --method x4_upscaler --texture-dir textures/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upscale.add_argument("--blend", metavar="IN.blend", help="the .blend holding the image (default: a new scene)")
    upscale.add_argument("--image", metavar="NAME|FILE",
                         help="an Image in the .blend, or an image file (default: the file's last result)")
    upscale.add_argument("--factor", type=int, choices=(2, 4), default=4, help="2 or 4 (default: 4)")
    upscale.add_argument("--strength", type=float, default=0.35, metavar="F",
                         help="how much of each tile the model repaints, 0 to 1; 0 = a plain Lanczos resize, no "
                              "model (default: 0.35)")
    upscale.add_argument("--seamless", type=upper, choices=("AUTO", "NONE", "X", "Y", "BOTH"), default="AUTO",
                         metavar="AXES", help="wrap the tiles around along these axes: AUTO (what the image's recipe "
                         "says), NONE, X, Y, BOTH (default: AUTO)")
    upscale.add_argument("--prompt", help="what the image shows (default: its recipe's prompt)")
    upscale.add_argument("--model", metavar="MODEL", help="the model that redraws the tiles (default: the scene's)")
    upscale.add_argument("--model-cache", metavar="DIR", help="the model cache folder for this run")
    upscale.add_argument("--method", type=upper, choices=("TILED_DIFFUSION", "X4_UPSCALER"), default="TILED_DIFFUSION",
                         help="TILED_DIFFUSION (default): Lanczos, then the model redraws tiles; X4_UPSCALER: the "
                              "dedicated x4 upscaler model paints the large image (x2: its x4 result halved)")
    upscale.add_argument("--upscaler-model", metavar="MODEL",
                         help=f"X4_UPSCALER: the upscaler, a repo id or diffusers folder (default: {DEFAULT_UPSCALER})")
    upscale.add_argument("--noise-level", type=int, default=DEFAULT_NOISE_LEVEL, metavar="N",
                         help=f"X4_UPSCALER: noise added to the source, 0-{MAX_NOISE_LEVEL} (default: "
                              f"{DEFAULT_NOISE_LEVEL}; higher invents more)")
    upscale.add_argument("--control-model", metavar="MODEL",
                         help="the tile ControlNet (default: the one for the model's family)")
    upscale.add_argument("--tile-size", type=int, default=0, metavar="PX",
                         help=f"tile side in pixels: 0 (the model's own resolution, the default) or a multiple of 8 "
                              f"from {MIN_TILE_SIZE} to {MAX_TILE_SIZE}")
    upscale.add_argument("--seed", type=parse_seed, metavar="N|random",
                         help="the seed the tiles' seeds derive from (default: the scene's)")
    upscale.add_argument("--out", metavar="OUT.blend", help="save the scene with the upscaled image packed inside")
    upscale.add_argument("--texture-dir", metavar="DIR",
                         help="also write the upscaled image as DIR/<prompt>_<seed>_<digest>.png with its recipe")
    return upscale
