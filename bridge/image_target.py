"""``target = 'IMAGE'``: the result is a new packed image and nothing else; the base of the Material and
Project targets, which then put that image on objects."""

from __future__ import annotations

import bpy

from . import results, view_inputs
from .plan import Plan, Target
from .run import GenerationRun


class ImageRun(GenerationRun):
    """Writes the result image (with its control image kept beside it); touches no object."""

    def create_image(self, changes: results.Changes, result) -> bpy.types.Image:
        recipe = dict(result.recipe, target=self.plan.target)
        if self.plan.request.mode == "INPAINT":
            recipe["mask_image"] = self.plan.mask_name or ""
        image = results.create_result_image(changes, result.image, recipe)
        if self.plan.request.control != "NONE":
            results.keep_control_image(changes, image, self.plan.request.control_image)
        return image


def no_objects(context: bpy.types.Context) -> list[str]:
    return []


def capture(context: bpy.types.Context, settings, plan: Plan, objects: list[bpy.types.Object]) -> None:
    view_inputs.check(context, settings, plan)
    view_inputs.read(context, settings, plan)


TARGET = Target(objects=no_objects, capture=capture, start=ImageRun)
