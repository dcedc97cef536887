"""``target = 'MATERIAL'``: the result on the active mesh's active material (``results.apply_to_material``)."""

from __future__ import annotations

import bpy

from . import results
from .image_target import ImageRun, capture
from .plan import Target


class MaterialRun(ImageRun):
    def write_objects(self, changes: results.Changes, objects: list[bpy.types.Object],
                      image: bpy.types.Image) -> list[str]:
        if objects:
            results.apply_to_material(changes, objects[0], image, keep_history=self.plan.keep_history)
        return []


def target_objects(context: bpy.types.Context) -> list[str]:
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise ValueError("Target is Material but the active object is not a mesh: select a mesh object")
    return [obj.name]


TARGET = Target(objects=target_objects, capture=capture, start=MaterialRun)
