"""The engine's pinned Python packages: the one place the add-on reads them from.

``requirements-engine.txt`` at the repository root is what the development venv
installs; it is left out of the extension zip, so the add-on carries the same
pins here as data (a test keeps the two identical).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` requirement."""

    name: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


# Kept in the same order as requirements-engine.txt.
ENGINE_PINS: tuple[Pin, ...] = (
    Pin("torch", "2.13.0"),
    Pin("diffusers", "0.42.1"),
    Pin("transformers", "5.24.0"),
    Pin("accelerate", "1.15.0"),
    Pin("safetensors", "0.8.0"),
    Pin("peft", "0.21.2"),  # diffusers loads LoRAs through peft
    Pin("huggingface_hub", "2.4.0"),
    Pin("pillow", "13.0.0"),
    Pin("numpy", "1.26.4"),
)

TORCH = "torch"

# What the preferences list, in this order (huggingface_hub: downloads need it; peft: LoRAs).
STATUS_PACKAGES: tuple[str, ...] = (
    "torch", "diffusers", "transformers", "accelerate", "safetensors", "peft", "huggingface_hub",
)

# The pins are tested on Python 3.11, the Python of Blender 4.2 LTS to 5.0;
# numpy 1.26.4 has no wheels for newer Pythons, so pip would try to compile it.
SUPPORTED_PYTHON: tuple[int, int] = (3, 11)
SUPPORTED_BLENDERS = "Blender 4.2 to 5.0"


def pin(name: str) -> Pin:
    """The pin for ``name`` (``KeyError`` if the engine does not pin it)."""
    key = normalize_name(name)
    for item in ENGINE_PINS:
        if normalize_name(item.name) == key:
            return item
    raise KeyError(name)


def normalize_name(name: str) -> str:
    """PEP 503 normalisation: ``huggingface-hub`` == ``huggingface_hub`` == ``HuggingFace.Hub``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution name of a requirement line (``torch==2.13.0+cu130`` -> ``torch``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(1)


def parse_requirements_text(text: str) -> list[Pin]:
    """The ``name==version`` lines of a requirements file (comments and blanks skipped).

    Anything else (ranges, options, includes) is refused: the engine's pins are exact.
    """
    pins = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        if match is None:
            raise ValueError(f"line {number}: {raw.strip()!r} is not an exact name==version pin")
        pins.append(Pin(match.group(1), match.group(2)))
    return pins
