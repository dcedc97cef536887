"""An image named on the command line: an Image of the open file, else an image file to load."""

from __future__ import annotations

import os

import bpy

from .errors import CommandError, operator_message


def image_argument(option: str, value: str):
    """An Image datablock of the open file by name, else an image file loaded (``option`` names the argument)."""
    image = bpy.data.images.get(value)
    if image is not None:
        return image
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isfile(path):
        raise CommandError(f"{option} is neither an image in the file nor an image file: {value}")
    try:
        return bpy.data.images.load(path, check_existing=True)
    except RuntimeError as error:
        raise CommandError(f"could not load {option} {path}: {operator_message(error)}") from None
