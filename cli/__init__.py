"""The ``latent_textures`` command: texture assets headless, through the same operator the panel runs.

In Blender::

    blender --command latent_textures generate --blend in.blend --prompt "rusty metal" --out out.blend
    blender --command latent_textures models

In this repository's bpy-module environment (no Blender binary) the launcher
``tools/latent_textures.py`` loads the extension and calls :func:`main` with
the same arguments.

One job per module: ``commands`` lists the sub-commands, each with its own parser setup and
handler; ``arguments`` is the parser they add themselves to and the argument helpers and checks they
share. ``generate``: ``generate_arguments`` (its options), ``plan`` turns the arguments and the scene
into generations, ``run`` runs them through ``bpy.ops.latent_textures.generate()``, ``writer`` writes
the outputs all or nothing; ``upscale``, ``compare`` (a comparison grid through
``bpy.ops.latent_textures.compare()``) and ``models`` (the model cache) are one module each.
``support`` holds the pure helpers (names, prompts files, PNG text, progress). Registration imports
nothing heavy: only the standard library and bpy; the parser and the sub-commands (which read the
add-on's settings) are imported when the command runs, not when the add-on is enabled.
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


def main(argv: list[str], *, prog: str | None = None) -> int:
    """Run a command line (the arguments after the command id); returns the exit status.

    ``prog``: the program name in usage lines (None: ``blender --command latent_textures``).
    """
    from .arguments import DEFAULT_PROG, ParserExit, build_parser

    try:
        from .commands import COMMANDS

        parser = build_parser(COMMANDS, prog or DEFAULT_PROG)
        args = parser.parse_args(list(argv))
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return args.run(args)
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
