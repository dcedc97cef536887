"""The command line: the parser, and every check that needs no scene (numbers, output paths, the prompts file)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from .. import properties
from ..properties.image import MODE_ITEMS, SEAMLESS_ITEMS, SOURCE_ITEMS, TARGET_ITEMS
from ..properties.sampling import SCHEDULER_ITEMS
from . import conditioning, support, whole_object
from .errors import COMMAND_ID, CommandError, UsageError


DEFAULT_PROG = f"blender --command {COMMAND_ID}"


class ParserExit(Exception):
    """argparse is done (--help, or a usage error already printed): return this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse that returns instead of calling sys.exit (Blender's --command expects a return code)."""

    def error(self, message: str) -> None:
        raise UsageError(f"{message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> None:
        if message:
            sys.stderr.write(message)
        raise ParserExit(status)


def settings_rna(name: str):
    return properties.LatentTexturesSettings.bl_rna.properties[name]


def _choices(items) -> list[str]:
    return [identifier for identifier, _label, _description in items]


def _choice_help(items) -> str:
    return "; ".join(f"{identifier}: {description}" for identifier, _label, description in items)


def _upper(value: str) -> str:
    return value.strip().upper().replace("-", "_")


RANDOM_SEED = "random"


def parse_seed(value: str) -> int | str:
    if value.strip().lower() == RANDOM_SEED:
        return RANDOM_SEED
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {value!r}") from None


def _scene_default(name: str) -> str:
    prop = settings_rna(name)
    default = prop.default
    if prop.type == "FLOAT":
        default = round(default, 3)
    return f"the scene's setting; {default} in a new scene"


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    from .upscale import add_upscale_command

    parser = Parser(
        prog=prog,
        description="Latent Textures from the command line: generate textures headless with the same "
                    "operator the panel runs, and list the models available locally.",
        epilog=f"Run '{prog} COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    generate = commands.add_parser(
        "generate",
        help="generate textures onto objects (one per prompt; a prompts file makes a batch)",
        description=textwrap.fill(
            "Generate textures with bpy.ops.latent_textures.generate, the operator the panel runs. "
            "Options you leave out keep the value saved in the scene (the add-on's defaults in a new scene). "
            "Everything is checked before the first texture is generated, and files are written only when "
            "every texture succeeded: on failure the exit status is non-zero, one line says why, and no "
            "output file is written. Texture files are named from their recipe (<prompt>_<seed>_<digest>.png), "
            "so the same command writes the same files again.", width=100,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            f"  {prog} generate --blend crate.blend --objects Crate --prompt \"weathered oak planks\" \\\n"
            "      --seed 7 --out crate_textured.blend --texture-dir textures/\n"
            f"  {prog} generate --blend props.blend --objects Barrel --prompts-file prompts.txt \\\n"
            "      --model ~/models/sd15 --steps 20 --texture-dir textures/\n"
            f"  {prog} generate --prompt \"red brick wall\" --seamless BOTH --out wall.blend  "
            "(no --blend: Blender's startup scene)\n"
            "\nexit status: 0 success, 1 failure (bad input, missing model, failed generation), "
            "2 bad arguments."
        ),
    )
    scene = generate.add_argument_group("scene")
    scene.add_argument("--blend", metavar="IN.blend",
                       help="the .blend file to texture (default: Blender's factory startup scene: a cube with a UV "
                            "map and a material, a camera and a light)")
    scene.add_argument("--objects", metavar="NAME[,NAME]", action="append",
                       help="mesh objects to texture, comma-separated or repeated. With --target MATERIAL each "
                            "object gets its own texture (one generation per object and prompt); with PROJECT "
                            "one texture per prompt is projected onto all of them from the scene camera; with OBJECT "
                            "each of their meshes gets a texture baked from several views into its own UV map. "
                            "Default: the active mesh (MATERIAL) or the selected meshes (PROJECT)")

    what = generate.add_argument_group("prompts")
    what.add_argument("--prompt", help="what to paint (default: the scene's prompt)")
    what.add_argument("--negative-prompt", metavar="TEXT", help="what to steer away from, for every prompt "
                      "(default: the scene's negative prompt)")
    what.add_argument("--prompts-file", metavar="FILE",
                      help="a UTF-8 text file with one prompt per line: one texture per line (blank lines and "
                           "lines starting with # are skipped). Replaces --prompt")

    model = generate.add_argument_group("model")
    model.add_argument("--model", metavar="MODEL",
                       help="a Hugging Face repo id (org/name), a local diffusers folder (with model_index.json) "
                            f"or a single-file .safetensors checkpoint (default: {_scene_default('model')})")
    model.add_argument("--model-cache", metavar="DIR",
                       help="the model cache folder for this run (Hugging Face cache layout, e.g. a shared or "
                            "pre-downloaded one on a render farm; default: the add-on preferences' Model Cache)")

    sampling = generate.add_argument_group("sampling")
    sampling.add_argument("--mode", type=_upper, choices=_choices(MODE_ITEMS), metavar="MODE",
                          help=f"{_choice_help(MODE_ITEMS)} (default: {_scene_default('mode')})")
    sampling.add_argument("--source", type=_upper, choices=_choices(SOURCE_ITEMS), metavar="SOURCE",
                          help=f"the image IMG2IMG and INPAINT start from. {_choice_help(SOURCE_ITEMS)} "
                               f"(default: {_scene_default('source')})")
    sampling.add_argument("--source-image", metavar="NAME|FILE",
                          help="for --source IMAGE: an Image datablock in the .blend, or an image file to load")
    sampling.add_argument("--strength", type=float, metavar="F",
                          help=f"IMG2IMG: how much of the source is repainted, above 0 up to 1 "
                               f"(default: {_scene_default('strength')})")
    sampling.add_argument("--width", type=int, metavar="PX",
                          help=f"image width, a multiple of 8 from 64 to 4096 (default: {_scene_default('width')})")
    sampling.add_argument("--height", type=int, metavar="PX",
                          help=f"image height, a multiple of 8 from 64 to 4096 (default: {_scene_default('height')})")
    sampling.add_argument("--steps", type=int, metavar="N",
                          help=f"denoising steps (default: {_scene_default('steps')})")
    sampling.add_argument("--guidance", type=float, metavar="F",
                          help="how strongly the prompt is followed, 0 to 30; 1 or less turns guidance off "
                               f"(default: {_scene_default('guidance_scale')})")
    sampling.add_argument("--scheduler", type=_upper, choices=_choices(SCHEDULER_ITEMS), metavar="NAME",
                          help=f"{_choice_help(SCHEDULER_ITEMS)} (default: {_scene_default('scheduler')})")
    sampling.add_argument("--seed", type=parse_seed, metavar="N|random",
                          help="noise seed, 0 to 2147483647, the same for every texture of the run; 'random' picks "
                               "a new one per texture (default: the seed saved in the scene, 0 in a new scene: "
                               "runs are repeatable unless you ask for random)")
    sampling.add_argument("--seamless", type=_upper, choices=_choices(SEAMLESS_ITEMS), metavar="AXES",
                          help=f"tileable output: {_choice_help(SEAMLESS_ITEMS)} "
                               f"(default: {_scene_default('seamless')})")
    sampling.add_argument("--target", type=_upper, choices=_choices(TARGET_ITEMS), metavar="TARGET",
                          help=f"where each texture goes. {_choice_help(TARGET_ITEMS)} "
                               f"(default: {_scene_default('target')})")

    conditioning.add_arguments(generate, _choices, _choice_help, _upper)
    insight = generate.add_argument_group("insight (docs/insight.md)")
    insight.add_argument("--filmstrip", action="store_true",
                         help="also record the denoising filmstrip: a contact sheet of every step, packed in the "
                              ".blend; with --texture-dir also <texture>_filmstrip.png and every full-size frame "
                              "as <texture>_filmstrip/step_NNN.png")
    whole_object.add_arguments(generate, _choices, _choice_help, _upper)

    output = generate.add_argument_group("output (at least one)")
    output.add_argument("--out", metavar="OUT.blend",
                        help="save the textured scene here (textures packed inside; may be the --blend file "
                             "itself); written only if every texture succeeded")
    output.add_argument("--texture-dir", metavar="DIR",
                        help="also write each texture as DIR/<prompt>_<seed>_<digest>.png, with its recipe in "
                             "the PNG text metadata ('latent_textures': JSON; 'parameters': readable summary)")

    add_upscale_command(commands, prog, _upper)
    compare = commands.add_parser(
        "compare",
        help="one labelled grid image: guidance values along the row, schedulers or step counts down the column",
        description=textwrap.fill(
            "Run bpy.ops.latent_textures.compare: one prompt and seed, a row of guidance values against a column "
            "of schedulers or step counts, each cell exactly the image 'generate' makes with those settings. "
            "Options you leave out keep the scene's value.", width=100,
        ),
    )
    compare.add_argument("--blend", metavar="IN.blend", help="the .blend whose settings to use (default: a new scene)")
    compare.add_argument("--prompt", help="what to paint (default: the scene's prompt)")
    compare.add_argument("--negative-prompt", metavar="TEXT", help="what to steer away from")
    compare.add_argument("--model", metavar="MODEL", help=f"as for generate (default: {_scene_default('model')})")
    compare.add_argument("--model-cache", metavar="DIR", help="as for generate")
    compare.add_argument("--width", type=int, metavar="PX", help="cell width, a multiple of 8")
    compare.add_argument("--height", type=int, metavar="PX", help="cell height, a multiple of 8")
    compare.add_argument("--steps", type=int, metavar="N", help="denoising steps (rows of schedulers)")
    compare.add_argument("--scheduler", type=_upper, choices=_choices(SCHEDULER_ITEMS), metavar="NAME",
                         help="the scheduler (rows of step counts)")
    compare.add_argument("--seed", type=parse_seed, metavar="N|random", help="one seed for every cell")
    compare.add_argument("--guidance-values", metavar="LIST", default=settings_rna("compare_guidance").default,
                         help="guidance values along the row, comma separated (default: %(default)s)")
    compare.add_argument("--rows", type=_upper, choices=["SCHEDULER", "STEPS"], default="SCHEDULER",
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

    models = commands.add_parser(
        "models",
        help="list the models available locally (the add-on's and the shared Hugging Face cache, model folders)",
        description="List the diffusion models in the add-on's model cache and in the standard Hugging Face cache "
                    "(HF_HUB_CACHE / HF_HOME), each marked with its cache, and the checkpoints, LoRAs and "
                    "ControlNets in the model folders (read from file headers only). A repo id listed here runs "
                    "offline.",
    )
    models.add_argument("--model-cache", metavar="DIR",
                        help="the cache folder to list (default: the add-on preferences' Model Cache)")
    models.add_argument("--folder", metavar="DIR", action="append", default=[],
                        help="also scan this folder of .safetensors files (e.g. ComfyUI's models/checkpoints; "
                             "headers only), beside the preferences' Model Folders; repeatable")
    models.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    return parser


def output_paths(args) -> tuple[Path | None, Path | None]:
    if not args.out and not args.texture_dir:
        raise UsageError("nothing would be saved: give --out OUT.blend and/or --texture-dir DIR")
    out = texture_dir = None
    if args.out:
        out = Path(os.path.abspath(os.path.expanduser(args.out)))
        if out.suffix.lower() != ".blend":
            raise UsageError(f"--out must be a .blend file path, got {args.out}")
        if out.is_dir():
            raise UsageError(f"--out is a folder, not a .blend file: {out}")
    if args.texture_dir:
        texture_dir = Path(os.path.abspath(os.path.expanduser(args.texture_dir)))
        if texture_dir.exists() and not texture_dir.is_dir():
            raise UsageError(f"--texture-dir is a file, not a folder: {texture_dir}")
    for option, folder in (("--out", out.parent if out else None), ("--texture-dir", texture_dir)):
        if folder is not None:
            _check_writable(option, folder)
    return out, texture_dir


def _check_writable(option: str, folder: Path) -> None:
    """The folder, or the nearest part of it that exists, is a folder we may write in."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{option}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"{option}: no permission to write in {existing}")


def file_prompts(args) -> list[str] | None:
    """The prompts file's lines, read before anything else happens."""
    if args.prompts_file is None:
        return None
    if args.prompt is not None:
        raise UsageError("give --prompt or --prompts-file, not both")
    try:
        return support.read_prompts_file(os.path.abspath(os.path.expanduser(args.prompts_file)))
    except ValueError as error:
        raise CommandError(str(error)) from None


def _check_number(option: str, name: str, value, *, multiple_of: int | None = None):
    """``value`` within the setting's hard range (Blender would clamp silently; we refuse)."""
    if value is None:
        return None
    prop = settings_rna(name)
    low, high = prop.hard_min, prop.hard_max
    if name == "strength":
        ok = 0 < value <= high
        allowed = f"above 0, at most {high:g}"
    else:
        ok = low <= value <= high
        allowed = f"from {low:g} to {high:g}"
    if multiple_of and value % multiple_of:
        ok = False
    if not ok or value != value:  # NaN
        extra = f"a multiple of {multiple_of} " if multiple_of else ""
        raise UsageError(f"{option} must be {extra}{allowed}; got {value:g}")
    return value


def check_numbers(args) -> None:
    """``generate``'s numbers: sampling, conditioning and Whole Object."""
    check_sampling_numbers(args)
    conditioning.check_numbers(args, _check_number)
    whole_object.check_numbers(args, _check_number)


def check_sampling_numbers(args) -> None:
    """Size, steps, guidance, strength and seed (every command that generates)."""
    for option, name in (("--width", "width"), ("--height", "height")):
        _check_number(option, name, getattr(args, name), multiple_of=8)
    _check_number("--steps", "steps", args.steps)
    _check_number("--guidance", "guidance_scale", args.guidance)
    _check_number("--strength", "strength", args.strength)
    if args.seed not in (None, RANDOM_SEED):
        _check_number("--seed", "seed", args.seed)
