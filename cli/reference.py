"""``generate`` options for the reference image (IP-Adapter, issue 31): the picture, its strength, the adapter.

Parsed with the other arguments (``support.parse_reference``); checked against the open scene and the disk
(``apply``) before the first texture is generated: a missing file or an image without pixels fails with one line.
"""

from __future__ import annotations

import argparse
import os

from .errors import CommandError, UsageError
from .images import image_argument
from .reference_text import parse_reference


def add_arguments(generate: argparse.ArgumentParser) -> None:
    group = generate.add_argument_group("reference image (IP-Adapter)")
    group.add_argument("--reference", metavar="FILE|IMAGE[:STRENGTH]", type=parse_reference,
                       help="paint in the look of this picture: an image file, or an Image in the .blend, with an "
                            "optional strength from 0 to 1 after the last ':' (default: the scene's, 0.6 in a new "
                            "scene), e.g. wall.png:0.4 or C:\\textures\\wall.png")
    group.add_argument("--reference-model", metavar="MODEL",
                       help="the IP-Adapter: a .safetensors file, a folder or repo_id/subfolder/weight_name "
                            "(default: the scene's; empty = the default for the model's family)")
    group.add_argument("--reference-first-view", action="store_true",
                       help="--target OBJECT --method SEQUENTIAL without --reference: view 1's result is the "
                            "reference of the later views")


def check_numbers(args) -> None:
    if args.reference is not None and not args.reference[0]:
        raise UsageError("--reference needs an image file or an Image name before ':STRENGTH'")


def apply(args, context) -> None:
    """Write the options into the scene's settings; the picture is found and read now (not at the first run)."""
    from ..bridge.reference import reference_pixels

    settings = context.scene.latent_textures
    if args.reference_model is not None:
        model = args.reference_model.strip()
        settings.reference_model = os.path.abspath(os.path.expanduser(model)) if model and os.path.exists(
            os.path.expanduser(model)) else model
    if args.reference_first_view:
        if settings.target != "OBJECT" or settings.object_method != "SEQUENTIAL":
            raise UsageError("--reference-first-view needs --target OBJECT --method SEQUENTIAL")
        if args.reference is not None:
            raise UsageError("--reference-first-view is for runs without --reference (view 1 becomes the reference)")
        settings.reference_first_view = True
        _check_adapter(context, settings)
    if args.reference is None:
        return
    source, strength = args.reference
    try:
        image = image_argument("--reference", source)
    except CommandError as error:
        _, separator, tail = source.rpartition(":")
        hint = (f" (a strength after ':' must be from 0 to 1; got {tail})"
                if separator and _is_number(tail) else "")
        raise CommandError(f"{error}{hint}") from None
    try:
        reference_pixels(image)
    except ValueError as error:
        raise CommandError(f"--reference: {error}") from None
    settings.reference_image = image
    if strength is not None:
        settings.reference_strength = strength
    _check_adapter(context, settings)


def _check_adapter(context, settings) -> None:
    """The IP-Adapter is on disk or in a cache (or can be downloaded online): checked before the first texture
    (not at strength 0, where none is loaded - as in the panel)."""
    if settings.reference_strength == 0 and not settings.reference_first_view:
        return
    from ..bridge.reference import check_adapter
    from ..bridge.requests import options_from_preferences, resolve_model_path

    try:
        check_adapter(resolve_model_path(settings.reference_model), resolve_model_path(settings.model),
                      options_from_preferences(context))
    except ValueError as error:
        raise CommandError(f"--reference: {error}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

