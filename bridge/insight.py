"""Insight sheets (filmstrip, attention maps, comparison grids) as packed images with a recipe."""

from __future__ import annotations

import bpy

from .results import RECIPE_PROPERTY, Changes


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
    return [
        create_insight_image(changes, f"{result.name} {item.suffix}", item.image, dict(recipe, **item.recipe))
        for item in recorder.images
    ]
