"""Pure helpers of the command line (``cli/``): no bpy, no torch, standard library only.

Output names from a recipe, the batch prompts file, PNG text metadata and the
terminal progress bar. Importable from plain
Python, so each piece is tested without Blender.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import unicodedata
import zlib
from pathlib import Path
from typing import Any, TextIO

# -- output names ----------------------------------------------------------------

# The recipe fields that decide the pixels: equal fields, equal file name.
# (``target`` and ``version`` do not change the image, so they do not rename it.)
PIXEL_FIELDS = (
    "prompt", "negative_prompt", "model", "mode", "seed", "steps", "scheduler",
    "guidance_scale", "strength", "width", "height", "seamless",
)
# A Whole Object run bakes one texture per mesh: these decide its pixels too, and the mesh names the file.
OBJECT_FIELDS = ("mesh", "uv_map", "texture_size", "object_method", "object_views", "views")
SLUG_LENGTH = 40


def slugify(text: str, max_length: int = SLUG_LENGTH) -> str:
    """``"Rusty metal, 4K!"`` -> ``"rusty_metal_4k"``: ASCII, lower case, safe on every file system."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return slug[:max_length].rstrip("_") or "texture"


def recipe_digest(recipe: dict[str, Any], source: str | None = None) -> str:
    """8 hex digits that change whenever a pixel-deciding recipe field changes.

    ``source`` names an image-to-image starting image (which the recipe does not hold).
    """
    key = {name: recipe.get(name) for name in PIXEL_FIELDS}
    if recipe.get("target") == "OBJECT":
        key.update((name, recipe.get(name)) for name in OBJECT_FIELDS)
    if source is not None:
        key["source"] = source
    # Settings newer than the names count only when set: the names of runs without them stay as they were.
    key.update((name, recipe[name]) for name in ("color_match", "reference") if recipe.get(name) not in (None, "NONE", {}))
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:8]


def output_stem(recipe: dict[str, Any], source: str | None = None) -> str:
    """``<prompt slug>_<seed>_<recipe digest>``, then ``_<mesh slug>`` for a Whole Object texture:
    the same recipe always gets the same name."""
    stem = f"{slugify(str(recipe.get('prompt', '')))}_{recipe.get('seed')}_{recipe_digest(recipe, source)}"
    if recipe.get("target") == "OBJECT" and recipe.get("mesh"):
        stem += f"_{slugify(str(recipe['mesh']))}"
    return stem


# -- batch prompts -----------------------------------------------------------------


def parse_prompts(text: str) -> list[str]:
    """One prompt per line; blank lines and lines starting with ``#`` are skipped."""
    prompts = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            prompts.append(line)
    return prompts


def read_prompts_file(path: str | os.PathLike[str]) -> list[str]:
    """The prompts in a UTF-8 text file; ``ValueError`` with a one-line reason otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"prompts file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"prompts file is a folder: {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"prompts file is not UTF-8 text: {path}") from None
    except OSError as error:
        raise ValueError(f"cannot read the prompts file {path}: {error.strerror or error}") from None
    prompts = parse_prompts(text)
    if not prompts:
        raise ValueError(f"prompts file has no prompts (one per line; blank and # lines are skipped): {path}")
    return prompts


# -- PNG text metadata ---------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        if offset + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if len(body) != length or offset + 12 + length > len(data):
            raise ValueError(f"truncated PNG chunk {kind!r}")
        chunks.append((kind, body))
        offset += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise ValueError("PNG without IHDR/IEND")
    return chunks


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, kind, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _text_body(key: str, value: str) -> tuple[bytes, bytes]:
    """A tEXt chunk where Latin-1 suffices, else an (uncompressed) UTF-8 iTXt chunk."""
    keyword = key.encode("latin-1")
    if not 1 <= len(keyword) <= 79 or b"\0" in keyword:
        raise ValueError(f"PNG text keyword must be 1-79 Latin-1 characters: {key!r}")
    try:
        return b"tEXt", keyword + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", keyword + b"\0\0\0" + b"\0" + b"\0" + value.encode("utf-8")


def _chunk_keyword(body: bytes) -> str:
    return body.split(b"\0", 1)[0].decode("latin-1")


def png_with_text(data: bytes, text: dict[str, str]) -> bytes:
    """``data`` (a PNG) with ``text`` as text chunks right after IHDR; same-keyword chunks are replaced."""
    chunks = [(kind, body) for kind, body in _chunks(data)
              if not (kind in _TEXT_CHUNKS and _chunk_keyword(body) in text)]
    out = [PNG_SIGNATURE, png_chunk(*chunks[0])]
    out += [png_chunk(*_text_body(key, value)) for key, value in text.items()]
    out += [png_chunk(kind, body) for kind, body in chunks[1:]]
    return b"".join(out)


def png_text(data: bytes) -> dict[str, str]:
    """Every tEXt / zTXt / iTXt entry of a PNG."""
    found = {}
    for kind, body in _chunks(data):
        if kind not in _TEXT_CHUNKS:
            continue
        key, rest = body.split(b"\0", 1)
        if kind == b"tEXt":
            value = rest.decode("latin-1")
        elif kind == b"zTXt":
            value = zlib.decompress(rest[1:]).decode("latin-1")
        else:
            compressed, rest = rest[0], rest[2:]
            _language, _translated, raw = rest.split(b"\0", 2)
            value = (zlib.decompress(raw) if compressed else raw).decode("utf-8")
        found[key.decode("latin-1")] = value
    return found


# Diffusers scheduler -> the name other Stable Diffusion tools print in "parameters".
_SAMPLER_NAMES = {
    "DPM_SOLVER_MULTISTEP": "DPM++ 2M",
    "DPM_SOLVER_MULTISTEP_KARRAS": "DPM++ 2M Karras",
    "DDIM": "DDIM",
    "EULER": "Euler",
    "EULER_ANCESTRAL": "Euler a",
    "PNDM": "PNDM",
    "LCM": "LCM",
    "UNIPC": "UniPC",
}


def parameters_text(recipe: dict[str, Any]) -> str:
    """The recipe in the common ``parameters`` layout that image viewers and SD tools read."""
    lines = [str(recipe.get("prompt", ""))]
    if recipe.get("negative_prompt"):
        lines.append(f"Negative prompt: {recipe['negative_prompt']}")
    fields = [
        f"Steps: {recipe.get('steps')}",
        f"Sampler: {_SAMPLER_NAMES.get(recipe.get('scheduler'), recipe.get('scheduler'))}",
        f"CFG scale: {recipe.get('guidance_scale')}",
        f"Seed: {recipe.get('seed')}",
        f"Size: {recipe.get('width')}x{recipe.get('height')}",
        f"Model: {recipe.get('model')}",
    ]
    if recipe.get("mode") == "IMG2IMG":
        fields.append(f"Denoising strength: {recipe.get('strength')}")
    if recipe.get("seamless") not in (None, "NONE"):
        fields.append(f"Tiling: {recipe['seamless']}")
    lines.append(", ".join(fields))
    return "\n".join(lines)


def recipe_png_text(recipe: dict[str, Any], source: str | None = None) -> dict[str, str]:
    """The text chunks a texture PNG carries: the exact recipe (JSON), a readable summary, the img2img source."""
    text = {
        "latent_textures": json.dumps(recipe, sort_keys=True, ensure_ascii=True),
        "parameters": parameters_text(recipe),
        "Software": f"Latent Textures {recipe.get('version', '')}".strip(),
    }
    if source is not None:
        text["latent_textures_source"] = source
    return text


# -- formatting ------------------------------------------------------------------------


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d} h"


# -- progress ------------------------------------------------------------------------------


def bar(fraction: float, width: int = 24) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Progress:
    """A bar per image and one for the batch, on a terminal (redrawn in place) or a log (plain lines).

    ``step`` may be called from another thread than the rest; it only writes.
    """

    def __init__(self, stream: TextIO, total_images: int, *, interactive: bool | None = None,
                 log_interval: float = 2.0, clock=time.monotonic) -> None:
        self.stream = stream
        self.total = total_images
        self.interactive = stream.isatty() if interactive is None else interactive
        self.log_interval = log_interval
        self.clock = clock
        self.batch_started = clock()
        self.done = 0
        self._label = ""
        self._started = 0.0
        self._last_line = ""
        self._last_log = 0.0

    def _prefix(self, index: int) -> str:
        return f"[{index}/{self.total}]" if self.total > 1 else ""

    def start_image(self, index: int, label: str) -> None:
        self._label = f"{self._prefix(index)} {label}".strip()
        self._started = self.clock()
        self._last_log = 0.0
        self._write(f"{self._label}: starting", final=not self.interactive)

    def step(self, stage: str, done: int, total: int) -> None:
        """A progress event: ``DENOISE`` steps or ``DOWNLOAD`` bytes."""
        if total <= 0:
            return
        if stage == "DOWNLOAD":
            detail = f"downloading {format_bytes(done)} / {format_bytes(total)}"
        elif stage == "MAPS":
            detail = f"maps: step {done}/{total}"
        else:
            detail = f"step {done}/{total}"
        line = f"{self._label} {bar(done / total)} {detail} {format_seconds(self.clock() - self._started)}"
        if self.interactive:
            self._write(line, final=False)
        else:
            now = self.clock()
            if done >= total or now - self._last_log >= self.log_interval:
                self._last_log = now
                self._write(line, final=True)

    def finish_image(self, detail: str) -> None:
        self.done += 1
        elapsed = self.clock() - self._started
        self._write(f"{self._label} {bar(1.0)} done in {format_seconds(elapsed)}: {detail}", final=True)
        if self.total > 1:
            spent = self.clock() - self.batch_started
            left = spent / self.done * (self.total - self.done)
            eta = f", about {format_seconds(left)} left" if self.done < self.total else ""
            self._write(f"batch {bar(self.done / self.total)} {self.done}/{self.total} images, "
                        f"{format_seconds(spent)}{eta}", final=True)

    def fail_image(self) -> None:
        if self.interactive and self._last_line:
            self.stream.write("\n")
            self.stream.flush()
            self._last_line = ""

    def _write(self, line: str, *, final: bool) -> None:
        if self.interactive:
            padding = " " * max(0, len(self._last_line) - len(line))
            self.stream.write("\r" + line + padding + ("\n" if final else ""))
            self._last_line = "" if final else line
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
