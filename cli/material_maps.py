"""``generate --pbr``: material maps made with each texture (issue 30) and written beside it as
``<texture>_<map>.png`` (albedo 8-bit sRGB; roughness and metallic 8-bit grey; normal 16-bit RGB and height
16-bit grey, Non-Color data), each with its recipe in the PNG text like the texture's."""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np

from ..engine.material_maps_request import MAP_KINDS
from . import support
from .errors import UsageError

_SIXTEEN_BIT_MAPS = ("normal", "height")


def add_arguments(generate: argparse.ArgumentParser) -> None:
    group = generate.add_argument_group("material maps (docs/material-maps.md)")
    group.add_argument("--pbr", metavar="MAP[,MAP]",
                       help="also make these material maps of each texture and wire them into its material: "
                            "albedo, roughness, metallic, normal, height (height: --target IMAGE or MATERIAL "
                            "only); with --texture-dir each is written as <texture>_<map>.png")
    group.add_argument("--pbr-model", metavar="MODEL",
                       help="the Marigold intrinsics model for albedo/roughness/metallic (default: the scene's, "
                            "prs-eth/marigold-iid-appearance-v1-1 when empty)")
    group.add_argument("--normals-model", metavar="MODEL",
                       help="the Marigold normals model for normal/height (default: the scene's, "
                            "prs-eth/marigold-normals-v1-1 when empty)")


def parse_maps(text: str) -> set[str]:
    """``albedo,normal`` -> {"ALBEDO", "NORMAL"}; an unknown name is a UsageError naming the choices."""
    names = {part.strip().upper() for part in text.split(",") if part.strip()}
    unknown = sorted(names - set(MAP_KINDS))
    if unknown or not names:
        raise UsageError(f"--pbr takes a comma-separated list of {', '.join(m.lower() for m in MAP_KINDS)}; got "
                         f"{text!r}")
    return names


def apply(args, settings) -> None:
    """The options into the scene's settings (what is not given keeps the scene's value)."""
    if args.pbr is not None:
        settings.pbr_maps = parse_maps(args.pbr)
    if args.pbr_model is not None:
        settings.pbr_model = args.pbr_model
    if args.normals_model is not None:
        settings.normals_model = args.normals_model


def map_images(image) -> list[tuple[str, object]]:
    """(map, image) of every material map made from ``image`` (by name and recipe), in MAP_KINDS order."""
    import bpy

    def made_from(candidate, kind: str) -> bool:
        recipe = candidate.get("latent_textures")
        return recipe is not None and recipe.get("pbr_source") == image.name and recipe.get("pbr_map") == kind

    found = []
    for kind in (m.lower() for m in MAP_KINDS):
        made = bpy.data.images.get(f"{image.name} {kind}")
        if made is None or not made_from(made, kind):
            # Blender 4.2 cuts ID names at 63 bytes: a long result name's map is not under "<name> <map>"
            made = next((c for c in reversed(bpy.data.images) if made_from(c, kind)), None)
        if made is not None:
            found.append((kind, made))
    return found


def encode_map_png(kind: str, values: np.ndarray) -> bytes:
    """A map's stored values (h, w, 4 float32, top row first) as a PNG: 16-bit for normal and height, 8-bit for
    the others; grey (one channel) for roughness, metallic and height."""
    grey = kind in ("roughness", "metallic", "height")
    channels = values[..., :1] if grey else values[..., :3]
    depth = 16 if kind in _SIXTEEN_BIT_MAPS else 8
    scale = 65535.0 if depth == 16 else 255.0
    samples = np.clip(np.rint(np.clip(channels, 0.0, 1.0) * scale), 0, scale)
    samples = samples.astype(">u2" if depth == 16 else np.uint8)
    height, width = samples.shape[:2]
    rows = samples.reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, depth, 0 if grey else 2, 0, 0, 0)
    return (support.PNG_SIGNATURE + support.png_chunk(b"IHDR", header)
            + support.png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + support.png_chunk(b"IEND", b""))


def write_maps(writer, image, source: str | None, stem: str, folder: Path) -> list[Path]:
    """Every map of ``image`` as ``<stem>_<map>.png`` through ``writer`` (all or nothing with the rest)."""
    from ..bridge import pixels

    written = []
    for kind, made in map_images(image):
        final = folder / f"{stem}_{kind}.png"
        temp = writer.temp_path(final, ".png")
        recipe = made["latent_textures"].to_dict()
        data = encode_map_png(kind, pixels.read_pixels(made))
        temp.write_bytes(support.png_with_text(data, support.recipe_png_text(recipe, source)))
        writer.commit(temp, final)
        written.append(final)
    return written
