"""The command line's core: the parser that each sub-command adds itself to (``commands``), and the argument
helpers and checks the sub-commands share that need no scene (numbers, output paths, the prompts file)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from .. import properties
from . import support
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


def choices(items) -> list[str]:
    return [identifier for identifier, _label, _description in items]


def choice_help(items) -> str:
    return "; ".join(f"{identifier}: {description}" for identifier, _label, description in items)


def upper(value: str) -> str:
    return value.strip().upper().replace("-", "_")


RANDOM_SEED = "random"


def parse_seed(value: str) -> int | str:
    if value.strip().lower() == RANDOM_SEED:
        return RANDOM_SEED
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {value!r}") from None


def scene_default(name: str) -> str:
    prop = settings_rna(name)
    default = prop.default
    if prop.type == "FLOAT":
        default = round(default, 3)
    return f"the scene's setting; {default} in a new scene"


def build_parser(commands, prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    """The parser of ``commands`` (``cli/commands.py``): each adds its sub-parser; ``args.run`` is its handler."""
    parser = Parser(
        prog=prog,
        description="Latent Textures from the command line: generate textures headless with the same "
                    "operator the panel runs, and list the models available locally.",
        epilog=f"Run '{prog} COMMAND --help' for a command's options.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in commands:
        command.add_parser(subparsers, prog).set_defaults(run=command.run)
    return parser


def add_command(commands, name: str, summary: str, description: str, **options) -> argparse.ArgumentParser:
    """A sub-command's parser: ``summary`` in the list of commands, ``description`` (wrapped) atop its --help."""
    return commands.add_parser(name, help=summary, description=textwrap.fill(description, width=100), **options)


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


def check_number(option: str, name: str, value, *, multiple_of: int | None = None):
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


def check_sampling_numbers(args) -> None:
    """Size, steps, guidance, strength and seed (every command that generates)."""
    for option, name in (("--width", "width"), ("--height", "height")):
        check_number(option, name, getattr(args, name), multiple_of=8)
    check_number("--steps", "steps", args.steps)
    check_number("--guidance", "guidance_scale", args.guidance)
    check_number("--strength", "strength", args.strength)
    if args.seed not in (None, RANDOM_SEED):
        check_number("--seed", "seed", args.seed)
