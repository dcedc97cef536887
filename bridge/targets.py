"""The targets by the scene's ``target`` setting: each plugs into ``plan.prepare`` and starts its own run.

A new target is a module with a ``TARGET`` and one more line here; the plan and the run core know none of them.
"""

from __future__ import annotations

import bpy

from . import image_target, material_target, object_target, plan, project_target

TARGETS: dict[str, plan.Target] = {
    "IMAGE": image_target.TARGET,
    "MATERIAL": material_target.TARGET,
    "PROJECT": project_target.TARGET,
    "OBJECT": object_target.TARGET,
}


def prepare(context: bpy.types.Context, *, place_result: bool = True) -> plan.Plan:
    """``plan.prepare`` for the scene's target. Raises ValueError with a clear message; creates nothing."""
    return plan.prepare(context, TARGETS[context.scene.latent_textures.target], place_result=place_result)


def start(planned: plan.Plan):
    """The plan's run (a ``run.GenerationRun`` of its target), not started yet: ``start`` or ``run_here`` it."""
    return TARGETS[planned.target].start(planned)
