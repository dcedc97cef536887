"""The sub-commands, in the order ``--help`` lists them.

Each sub-command brings its own parser setup and handler; the argument core (``arguments``) knows none of
them. A new sub-command is one more line here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from .compare import add_compare_command, run_compare
from .generate_arguments import add_generate_command
from .models import add_models_command, run_models
from .run import run_generate
from .upscale import add_upscale_command, run_upscale


@dataclass(frozen=True)
class Command:
    # (the sub-parsers, the program name for its usage lines) -> its parser, arguments added
    add_parser: Callable[[argparse._SubParsersAction, str], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace], int]  # the parsed arguments -> the exit status


COMMANDS = (
    Command(add_generate_command, run_generate),
    Command(add_upscale_command, run_upscale),
    Command(add_compare_command, run_compare),
    Command(add_models_command, run_models),
)
