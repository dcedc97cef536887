"""``generate`` options for ``--target OBJECT`` (Whole Object, issue 11): views, method, texture size.

Parsed and range-checked with the other arguments (``check_numbers``); checked against the open
scene (``apply``) before the first texture is generated.
"""

from __future__ import annotations

import argparse

from ..properties.whole_object import COLOR_MATCH_ITEMS, OBJECT_METHOD_ITEMS, SYNC_ATTENTION_ITEMS
from .arguments import check_number, choice_help, choices, upper
from .errors import CommandError, UsageError


def add_arguments(generate: argparse.ArgumentParser) -> None:
    group = generate.add_argument_group("whole object (--target OBJECT)")
    group.add_argument("--views", type=int, metavar="N",
                       help="views placed automatically around the objects, 1 to 16 (default: the scene's, 6 in a "
                            "new scene)")
    group.add_argument("--view-collection", metavar="NAME",
                       help="use this collection's cameras (in name order) as the views instead")
    group.add_argument("--method", type=upper, choices=choices(OBJECT_METHOD_ITEMS), metavar="METHOD",
                       help=f"{choice_help(OBJECT_METHOD_ITEMS)} (default: the scene's, GRID in a new "
                            "scene)")
    group.add_argument("--sync-fraction", type=float, metavar="F",
                       help="--method SYNC: the first round(F x steps) denoising steps are synchronised, 0 to 1 "
                            "(default: the scene's, 0.8 in a new scene)")
    group.add_argument("--color-match", type=upper, choices=choices(COLOR_MATCH_ITEMS), metavar="MATCH",
                       help=f"--method GRID or SEQUENTIAL: each later view's colours matched to the earlier views' on "
                            f"the surface they share: {choice_help(COLOR_MATCH_ITEMS)} (default: the scene's, NONE "
                            "in a new scene)")
    group.add_argument("--sync-attention", type=upper, choices=choices(SYNC_ATTENTION_ITEMS), metavar="MODE",
                       help=f"--method SYNC, cross-view attention: {choice_help(SYNC_ATTENTION_ITEMS)} (default: the "
                            "scene's, NONE in a new scene)")
    group.add_argument("--texture-size", type=int, metavar="PX",
                       help="width and height of each object's baked texture, 256 to 8192 (default: the scene's, "
                            "2048 in a new scene)")
    group.add_argument("--keep-view-images", action="store_true",
                       help="keep each view's generated image and control image in the saved file")


def check_numbers(args) -> None:
    check_number("--views", "object_views", args.views)
    check_number("--texture-size", "texture_size", args.texture_size)
    check_number("--sync-fraction", "sync_fraction", args.sync_fraction)


def apply(args, context) -> None:
    """The options into the scene's settings; only for --target OBJECT."""
    settings = context.scene.latent_textures
    given = [option for option, value in (("--views", args.views), ("--view-collection", args.view_collection),
                                          ("--method", args.method), ("--texture-size", args.texture_size),
                                          ("--sync-fraction", args.sync_fraction),
                                          ("--color-match", args.color_match),
                                          ("--sync-attention", args.sync_attention),
                                          ("--keep-view-images", args.keep_view_images or None))
             if value is not None]
    if given and settings.target != "OBJECT":
        raise UsageError(f"{given[0]} needs --target OBJECT")
    if args.views is not None:
        settings.object_views = args.views
    if args.view_collection is not None:
        collection = context.blend_data.collections.get(args.view_collection)
        if collection is None:
            names = ", ".join(sorted(c.name for c in context.blend_data.collections)) or "none"
            raise CommandError(f"--view-collection: no collection '{args.view_collection}' (collections: {names})")
        settings.view_collection = collection
    if args.method is not None:
        settings.object_method = args.method
    if args.texture_size is not None:
        settings.texture_size = args.texture_size
    if args.sync_fraction is not None:
        settings.sync_fraction = args.sync_fraction
    if args.color_match is not None:
        settings.color_match = args.color_match
    if args.sync_attention is not None:
        settings.sync_attention = args.sync_attention
    if args.keep_view_images:
        settings.keep_view_images = True
