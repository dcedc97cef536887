"""``generate``, writing: the textures and the .blend through temporary names, all or nothing."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import bpy

from . import support
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


def write_outputs(results, source: str | None, out: Path | None, texture_dir: Path | None) -> list[Path]:
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
        raise CommandError(f"could not write the outputs (nothing was kept): {message}") from None
    return written
