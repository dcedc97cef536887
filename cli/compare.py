"""``compare``: one labelled grid of guidance values x schedulers (or step counts), through the real operator."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import bpy

from ..properties.sampling import SCHEDULER_ITEMS
from . import plan, support
from .arguments import add_command, check_sampling_numbers, choices, parse_seed, scene_default, settings_rna, upper
from .errors import CommandError, UsageError, operator_message, say
from .models import model_cache
from .run import _replay, _watching
from .writer import Writer, write_png


def _png_path(value: str) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(value)))
    if path.suffix.lower() != ".png":
        raise UsageError(f"--out-png must be a .png file path, got {value}")
    if path.is_dir():
        raise UsageError(f"--out-png is a folder, not a file: {path}")
    return path


def run_compare(args) -> int:
    started = time.monotonic()
    png = _png_path(args.out_png)
    out = None
    if args.out:
        out = Path(os.path.abspath(os.path.expanduser(args.out)))
        if out.suffix.lower() != ".blend":
            raise UsageError(f"--out must be a .blend file path, got {args.out}")
    check_sampling_numbers(args)
    plan.open_scene(args.blend)
    context = bpy.context
    settings = context.scene.latent_textures
    with model_cache(args.model_cache) as cache_dir:
        if args.prompt is not None:
            settings.prompt = args.prompt
        if not settings.prompt.strip():
            raise UsageError("no prompt: pass --prompt TEXT")
        model = plan.checked_model(args, settings, cache_dir)
        plan.apply_settings(args, settings, model)
        progress = support.Progress(sys.stderr, 1)
        progress.start_image(1, "comparison grid")
        captured = io.StringIO()
        names_before = set(bpy.data.images.keys())
        try:
            with _watching(progress), contextlib.redirect_stdout(captured):
                bpy.ops.latent_textures.compare(
                    guidance=args.guidance_values, axis=args.rows, schedulers=args.schedulers, steps=args.step_counts
                )
        except RuntimeError as error:
            progress.fail_image()
            _replay(captured.getvalue(), skip=("Error:",))
            raise CommandError(operator_message(error)) from None
        grids = [bpy.data.images[n] for n in bpy.data.images.keys() if n not in names_before]
        if len(grids) != 1:
            raise CommandError("the comparison did not produce a grid image")
        grid = grids[0]
        recipe = grid["latent_textures"].to_dict()
        progress.finish_image(f"'{grid.name}', seed {recipe.get('seed')}")
    writer = Writer()
    written = []
    try:
        writer.ensure_dir(png.parent)
        write_png(writer, grid, recipe, None, png)
        written.append(png)
        if out is not None:
            writer.ensure_dir(out.parent)
            temp = writer.temp_path(out, ".blend")
            with contextlib.redirect_stdout(io.StringIO()):
                bpy.ops.wm.save_as_mainfile(filepath=str(temp), check_existing=False, copy=True)
            writer.commit(temp, out)
            written.append(out)
    except Exception as error:
        writer.rollback()
        raise CommandError(f"could not write the outputs (nothing was kept): {error}") from None
    for path in written:
        say(f"Wrote {path}")
    say(f"Done: comparison grid in {support.format_seconds(time.monotonic() - started)}")
    return 0


def add_compare_command(commands, prog: str) -> argparse.ArgumentParser:
    compare = add_command(
        commands, "compare",
        summary="one labelled grid image: guidance values along the row, schedulers or step counts down the column",
        description="Run bpy.ops.latent_textures.compare: one prompt and seed, a row of guidance values against a "
                    "column of schedulers or step counts, each cell exactly the image 'generate' makes with those "
                    "settings. Options you leave out keep the scene's value.",
    )
    compare.add_argument("--blend", metavar="IN.blend", help="the .blend whose settings to use (default: a new scene)")
    compare.add_argument("--prompt", help="what to paint (default: the scene's prompt)")
    compare.add_argument("--negative-prompt", metavar="TEXT", help="what to steer away from")
    compare.add_argument("--model", metavar="MODEL", help=f"as for generate (default: {scene_default('model')})")
    compare.add_argument("--model-cache", metavar="DIR", help="as for generate")
    compare.add_argument("--width", type=int, metavar="PX", help="cell width, a multiple of 8")
    compare.add_argument("--height", type=int, metavar="PX", help="cell height, a multiple of 8")
    compare.add_argument("--steps", type=int, metavar="N", help="denoising steps (rows of schedulers)")
    compare.add_argument("--scheduler", type=upper, choices=choices(SCHEDULER_ITEMS), metavar="NAME",
                         help="the scheduler (rows of step counts)")
    compare.add_argument("--seed", type=parse_seed, metavar="N|random", help="one seed for every cell")
    compare.add_argument("--guidance-values", metavar="LIST", default=settings_rna("compare_guidance").default,
                         help="guidance values along the row, comma separated (default: %(default)s)")
    compare.add_argument("--rows", type=upper, choices=["SCHEDULER", "STEPS"], default="SCHEDULER",
                         help="what changes down the column (default: %(default)s)")
    compare.add_argument("--schedulers", metavar="LIST", default="DPM_SOLVER_MULTISTEP, EULER, DDIM",
                         help="--rows SCHEDULER: scheduler names, comma separated (default: %(default)s)")
    compare.add_argument("--step-counts", metavar="LIST", default=settings_rna("compare_steps").default,
                         help="--rows STEPS: step counts, comma separated (default: %(default)s)")
    compare.add_argument("--out-png", metavar="GRID.png", required=True,
                         help="write the grid here (recipe in the PNG text metadata)")
    compare.add_argument("--out", metavar="OUT.blend", help="also save the scene with the grid packed inside")
    compare.set_defaults(mode=None, source=None, strength=None, guidance=None, seamless=None, target=None,
                         objects=None, source_image=None, texture_dir=None, filmstrip=False)
    return compare
