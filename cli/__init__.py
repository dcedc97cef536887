"""The ``latent_textures`` command: texture assets headless, through the same operator the panel runs.

In Blender::

    blender --command latent_textures generate --blend in.blend --prompt "rusty metal" --out out.blend
    blender --command latent_textures models

In this repository's bpy-module environment (no Blender binary) the launcher
``tools/latent_textures.py`` loads the extension and calls :func:`main` with
the same arguments.

One job per module: ``arguments`` parses and checks the command line,
``models`` lists the model cache, ``plan`` turns the arguments and the scene
into generations, ``run`` runs them through ``bpy.ops.latent_textures.generate()``,
``writer`` writes the outputs all or nothing, ``compare`` runs a comparison grid
(``bpy.ops.latent_textures.compare()``), ``support`` holds the pure helpers
(names, prompts files, PNG text, progress). Registration imports nothing heavy:
only the standard library and bpy; the parser (``arguments``, which reads the add-on's
settings) is imported when the command runs, not when the add-on is enabled.
"""

from __future__ import annotations

import os
import sys
import traceback

import bpy

from .errors import COMMAND_ID, CommandError, UsageError, print_error

DEBUG_ENV = "LATENT_TEXTURES_DEBUG"

_handle = None


def register() -> None:
    global _handle
    _handle = bpy.utils.register_cli_command(COMMAND_ID, main)


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None


def _command(name: str):
    if name == "generate":
        from .run import run_generate

        return run_generate
    if name == "upscale":
        from .upscale import run_upscale

        return run_upscale
    if name == "compare":
        from .compare import run_compare

        return run_compare
    from .models import run_models

    return run_models


def main(argv: list[str], *, prog: str | None = None) -> int:
    """Run a command line (the arguments after the command id); returns the exit status.

    ``prog``: the program name in usage lines (None: ``blender --command latent_textures``).
    """
    from .arguments import DEFAULT_PROG, ParserExit, build_parser

    try:
        parser = build_parser(prog or DEFAULT_PROG)
        args = parser.parse_args(list(argv))
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return _command(args.command)(args)
    except ParserExit as done:
        return done.status
    except UsageError as error:
        print_error(error)
        return 2
    except CommandError as error:
        print_error(error)
        return 1
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except Exception as error:  # a bug: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        print_error(f"unexpected {type(error).__name__}: {error} (set {DEBUG_ENV}=1 for the traceback)")
        return 1
