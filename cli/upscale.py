"""``upscale``: an image (a result in a .blend, or an image file) x2/x4 through ``bpy.ops.latent_textures.upscale()``."""

from __future__ import annotations

import sys
import time

import bpy

from . import plan, support
from .arguments import RANDOM_SEED, output_paths
from .errors import UsageError, say
from .models import model_cache
from .run import run_operator
from .writer import write_outputs


def run_upscale(args) -> int:
    started = time.monotonic()
    out, texture_dir = output_paths(args)
    if not 0 <= args.strength <= 1:
        raise UsageError(f"--strength must be from 0 to 1; got {args.strength:g}")
    plan.open_scene(args.blend)
    context = bpy.context
    settings = context.scene.latent_textures
    with model_cache(args.model_cache) as cache_dir:
        image = plan.image_argument("--image", args.image) if args.image else settings.result_image
        if image is None:
            raise UsageError("--image is needed: the file has no result image to upscale")
        if args.model is not None or args.strength > 0:
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
        }
        progress = support.Progress(sys.stderr, 1)
        result = run_operator(context, bpy.ops.latent_textures.upscale, options, f"{image.name} x{args.factor}", 1, 1,
                              progress)
    for path in write_outputs([result], None, out, texture_dir):
        say(f"Wrote {path}")
    say(f"Done: 1 image in {support.format_seconds(time.monotonic() - started)}")
    return 0
