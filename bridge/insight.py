"""Insight sheets (filmstrip, attention maps, comparison grids) as packed images with a recipe."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import bpy

from .results import RECIPE_PROPERTY, Changes

_filmstrip_listeners: list[Callable[[str, list[Any]], None]] = []


@contextlib.contextmanager
def filmstrip_listener(callback: Callable[[str, list[Any]], None]) -> Iterator[None]:
    """Call ``callback(result image name, frames)`` with the full-size frames of every filmstrip written
    meanwhile (``engine.insight.Frame``: ``image``, ``step``, ``timestep``, ``sigma``); the command line
    writes them as files. Frames are not kept otherwise (a sheet holds thumbnails)."""
    _filmstrip_listeners.append(callback)
    try:
        yield
    finally:
        _filmstrip_listeners.remove(callback)


def recorder_from_settings(settings):
    """An ``InsightRecorder`` for the scene's ``record_filmstrip`` / ``record_attention``, or None (records nothing)."""
    filmstrip = bool(getattr(settings, "record_filmstrip", False))
    attention = bool(getattr(settings, "record_attention", False))
    if not (filmstrip or attention):
        return None
    from ..engine.insight import InsightRecorder

    recorder = InsightRecorder(filmstrip=filmstrip, attention=attention)
    recorder.validate(settings.prompt)
    return recorder


def create_insight_image(changes: Changes, name: str, array, recipe: dict) -> bpy.types.Image:
    """A packed byte image named ``name`` holding ``array`` (h, w, 3|4, top row first) and ``recipe``."""
    image = changes.new_image(name, array)
    image[RECIPE_PROPERTY] = recipe
    image.pack()
    # Nothing uses a sheet (no material, no pointer): without a fake user it would not be saved.
    image.use_fake_user = True
    return image


def write_recorded(changes: Changes, result: bpy.types.Image, recorder, recipe: dict) -> list[bpy.types.Image]:
    """The recorder's sheets, named after ``result``, each with the result's recipe plus its own keys."""
    if recorder.filmstrip and recorder.frames:
        for listener in list(_filmstrip_listeners):
            listener(result.name, recorder.frames)
    return [
        create_insight_image(changes, f"{result.name} {item.suffix}", item.image, dict(recipe, **item.recipe))
        for item in recorder.images
    ]
