"""``generate`` options for geometry conditioning, inpainting masks and LoRAs (issue 10).

Parsed and range-checked with the other arguments (``check_numbers``); checked against the
open scene and the disk (``apply``) before the first texture is generated.
"""

from __future__ import annotations

import argparse
import os

import bpy

from ..properties.control import CONTROL_ITEMS
from ..properties.loras import LatentTexturesLora
from .arguments import check_number, choice_help, choices, upper
from .errors import CommandError, UsageError
from .images import image_argument

LORA_WEIGHT_SEPARATOR = ":"


def parse_lora(text: str) -> tuple[str, float | None]:
    """``PATH[:WEIGHT]`` -> (path or repo id, weight or None). A suffix that is not a number stays in the path
    (Windows drive letters, ``C:\\loras\\x.safetensors``)."""
    source, separator, tail = text.rpartition(LORA_WEIGHT_SEPARATOR)
    if separator:
        try:
            return source.strip(), float(tail)
        except ValueError:
            pass
    return text.strip(), None


def add_arguments(generate: argparse.ArgumentParser) -> None:
    group = generate.add_argument_group("geometry conditioning, inpainting and LoRAs")
    group.add_argument("--control", type=upper, choices=choices(CONTROL_ITEMS), metavar="KIND",
                       help="follow the scene's geometry seen through the scene camera (a ControlNet): "
                            f"{choice_help(CONTROL_ITEMS)} (default: the scene's, NONE in a new scene)")
    group.add_argument("--control-model", metavar="MODEL",
                       help="the ControlNet: a Hugging Face repo id, a diffusers folder or a .safetensors file "
                            "(default: the scene's; empty = the default for --control and the model's family)")
    group.add_argument("--control-strength", type=float, metavar="F",
                       help="how strongly the geometry steers the image, 0 to 2 (0 = not at all; default: the "
                            "scene's, 1.0 in a new scene)")
    group.add_argument("--mask", metavar="NAME|FILE",
                       help="--mode INPAINT: repaint where this image (an image in the file or an image file) is "
                            "white, keep where it is black; stretched to --width x --height. Without it, the "
                            "--source-image's transparent pixels are repainted")
    group.add_argument("--mask-blur", type=int, metavar="PX",
                       help="--mode INPAINT: feather the mask's edge by PX pixels (default: the scene's)")
    group.add_argument("--lora", metavar="PATH[:WEIGHT]", action="append", type=parse_lora,
                       help="apply a LoRA (.safetensors file or Hugging Face repo id) at WEIGHT, -2 to 2 "
                            "(default 1); repeat for several. Given, these replace the scene's LoRA list")


def check_numbers(args) -> None:
    check_number("--control-strength", "control_strength", args.control_strength)
    check_number("--mask-blur", "mask_blur", args.mask_blur)
    weight = LatentTexturesLora.bl_rna.properties["weight"]
    for source, value in args.lora or ():
        if not source:
            raise UsageError("--lora needs a LoRA file or repo id before ':WEIGHT'")
        if value is not None and not (weight.hard_min <= value <= weight.hard_max):
            raise UsageError(f"--lora {source}: the weight must be from {weight.hard_min:g} to {weight.hard_max:g}; "
                             f"got {value:g}")


def apply(args, context, allow_pickle: bool) -> None:
    """Write the options into the scene's settings, checking what can be checked without loading a model."""
    settings = context.scene.latent_textures
    if args.control is not None:
        settings.control = args.control
    if args.control_model is not None:
        settings.control_model = _local_path(args.control_model)
    if args.control_strength is not None:
        settings.control_strength = args.control_strength
    if args.mask_blur is not None:
        settings.mask_blur = args.mask_blur
    if settings.control != "NONE":
        if context.scene.camera is None:
            raise CommandError(f"--control {settings.control} sees the scene through its camera, but the scene has "
                               "no camera: add one, or --control NONE")
        if settings.control_model.strip():
            _check_control_model(settings.control_model, allow_pickle)
    if args.mask is not None:
        if settings.mode != "INPAINT":
            raise UsageError("--mask needs --mode INPAINT")
        settings.mask_image = image_argument("--mask", args.mask)
    if args.lora is not None:
        settings.loras.clear()
        for source, weight in args.lora:
            lora = settings.loras.add()
            lora.source = _checked_lora(source, allow_pickle)
            lora.weight = 1.0 if weight is None else weight


def _local_path(text: str) -> str:
    """A path that exists, relative to where the command runs, made absolute; anything else (a repo id) as is."""
    text = text.strip()
    if text and not text.startswith("//") and os.path.exists(os.path.expanduser(text)):
        return os.path.abspath(os.path.expanduser(text))
    return text


def _check_control_model(control_model: str, allow_pickle: bool) -> None:
    from ..engine import EngineError, controlnets

    try:
        controlnets.classify(bpy.path.abspath(control_model), allow_pickle=allow_pickle)
    except EngineError as error:
        raise CommandError(f"--control-model: {error}") from None


def _checked_lora(source: str, allow_pickle: bool) -> str:
    """A local LoRA file (made absolute; checked as the engine will: pickles refused unless allowed) or a repo id."""
    from ..engine import EngineError, loras, sources
    from ..engine.files import is_repo_id

    path = _local_path(source)
    if not os.path.exists(path) and is_repo_id(path) and not sources.looks_like_path(path):
        return path  # a repo id: fetched (or found in the cache) when the generation runs
    try:
        loras.resolve(path, allow_pickle=allow_pickle, cache_dir=None, offline=True)  # local: no download
    except EngineError as error:
        raise CommandError(f"--lora: {error}") from None
    return path
