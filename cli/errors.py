"""The command's failures and how they are printed: one line on stderr, an exit status."""

from __future__ import annotations

import sys

COMMAND_ID = "latent_textures"  # `latent-textures` is refused: ids must pass str.isidentifier()


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


class UsageError(CommandError):
    """Bad arguments: exit status 2, like argparse."""


def print_error(message) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    sys.stdout.flush()
    sys.stderr.write(f"{COMMAND_ID}: error: {text}\n")
    sys.stderr.flush()


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def operator_message(error: BaseException) -> str:
    """``RuntimeError('Error: message\\n')`` from bpy.ops -> ``message``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines)
    for prefix in ("Error: ", "Warning: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text
