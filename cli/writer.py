"""``generate``, writing: the textures and the .blend through temporary names, all or nothing."""

from __future__ import annotations

import contextlib
import errno
import io
import os
from pathlib import Path

import bpy

from . import material_maps, support
from .errors import CommandError, operator_message


class Writer:
    """Writes files through temporary names, and takes back everything it created if anything fails."""

    def __init__(self) -> None:
        self.created: list[Path] = []
        self.created_dirs: list[Path] = []
        self.temporary: list[Path] = []

    def ensure_dir(self, folder: Path) -> None:
        missing = []
        for parent in [folder, *folder.parents]:
            if parent.exists():
                break
            missing.append(parent)
        folder.mkdir(parents=True, exist_ok=True)
        self.created_dirs.extend(missing)  # deepest first

    def temp_path(self, final: Path, suffix: str) -> Path:
        path = final.with_name(f".{final.stem}.tmp{os.getpid()}{suffix}")
        self.temporary.append(path)
        return path

    def commit(self, temp: Path, final: Path) -> None:
        existed = final.exists()
        os.replace(temp, final)
        self.temporary.remove(temp)
        if not existed:
            self.created.append(final)

    def rollback(self) -> None:
        for path in self.temporary + self.created:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in self.created_dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()


def write_png(writer: Writer, image, recipe: dict, source: str | None, final: Path) -> None:
    from ..bridge import pixels

    temp = writer.temp_path(final, ".png")
    pixels.save_display_png(image, str(temp), view_transform="Standard")
    data = support.png_with_text(temp.read_bytes(), support.recipe_png_text(recipe, source))
    temp.write_bytes(data)
    writer.commit(temp, final)


def write_filmstrip(writer: Writer, image, frames: list, source: str | None, stem: str, folder: Path) -> list[Path]:
    """``<stem>_filmstrip.png`` (the contact sheet, with its recipe) and ``<stem>_filmstrip/step_NNN.png``."""
    import numpy as np
    from PIL import Image

    sheet = bpy.data.images.get(f"{image.name} filmstrip")
    written = []
    if sheet is not None:
        final = folder / f"{stem}_filmstrip.png"
        write_png(writer, sheet, sheet["latent_textures"].to_dict(), source, final)
        written.append(final)
    frame_dir = folder / f"{stem}_filmstrip"
    writer.ensure_dir(frame_dir)
    for frame in frames:
        final = frame_dir / f"step_{frame.step:03d}.png"
        temp = writer.temp_path(final, ".png")
        pixels = np.clip(np.rint(frame.image[..., :3] * 255.0), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(temp, format="PNG")
        writer.commit(temp, final)
        written.append(final)
    return written


def write_outputs(results, source: str | None, out: Path | None, texture_dir: Path | None,
                  filmstrips: dict | None = None) -> list[Path]:
    writer = Writer()
    written = []
    try:
        if texture_dir is not None:
            writer.ensure_dir(texture_dir)
            done = set()
            for image, recipe in results:
                final = texture_dir / f"{support.output_stem(recipe, source)}.png"
                if final not in done:  # the same recipe twice is the same picture
                    done.add(final)
                    write_png(writer, image, recipe, source, final)
                    written.append(final)
                    written += material_maps.write_maps(writer, image, source, support.output_stem(recipe, source),
                                                        texture_dir)
                    if filmstrips and image.name in filmstrips:
                        stem = support.output_stem(recipe, source)
                        written += write_filmstrip(writer, image, filmstrips[image.name], source, stem, texture_dir)
        if out is not None:
            writer.ensure_dir(out.parent)
            temp = writer.temp_path(out, ".blend")
            with contextlib.redirect_stdout(io.StringIO()):  # "Info: Saved copy as <temp name>"
                bpy.ops.wm.save_as_mainfile(filepath=str(temp), check_existing=False, copy=True)
            writer.commit(temp, out)
            written.append(out)
    except Exception as error:
        writer.rollback()
        message = operator_message(error) if isinstance(error, RuntimeError) else str(error)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            message = f"the disk is full ({message}); free some space or write to another folder"
        raise CommandError(f"could not write the outputs (nothing was kept): {message}") from None
    return written
