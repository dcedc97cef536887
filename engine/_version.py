"""The add-on version, read from ``blender_manifest.toml`` (the one place it is written)."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

_MANIFEST = Path(__file__).resolve().parent.parent / "blender_manifest.toml"


@functools.cache
def read_version() -> str:
    """``version`` from the manifest beside the package, or ``"0.0.0"`` when there is none."""
    try:
        with open(_MANIFEST, "rb") as f:
            return str(tomllib.load(f).get("version", "0.0.0"))
    except (OSError, tomllib.TOMLDecodeError):
        return "0.0.0"
