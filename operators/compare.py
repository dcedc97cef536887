"""``latent_textures.compare``: the scene's prompt and seed as a grid, guidance x schedulers or step counts."""

import bpy

from ..properties.sampling import SCHEDULER_ITEMS
from .job_modal import JobOperator

AXIS_ITEMS = (
    ("SCHEDULER", "Schedulers", "One row per scheduler"),
    ("STEPS", "Steps", "One row per step count"),
)


class LATENT_TEXTURES_OT_compare(JobOperator, bpy.types.Operator):
    bl_idname = "latent_textures.compare"
    bl_label = "Compare"
    bl_description = (
        "Generate a labelled grid: guidance values along the row, schedulers or step counts down the column, "
        "same prompt and seed (Esc cancels)"
    )
    bl_options = {"REGISTER", "UNDO"}

    guidance: bpy.props.StringProperty(
        name="Guidance", description="Guidance values along the row, comma separated ('' = the scene's)", default="",
    )
    axis: bpy.props.EnumProperty(name="Rows", items=(("SCENE", "Scene", "The scene's choice"),) + AXIS_ITEMS,
                                 default="SCENE")
    schedulers: bpy.props.StringProperty(
        name="Schedulers", description="Scheduler names down the column, comma separated ('' = the scene's)",
        default="",
    )
    steps: bpy.props.StringProperty(
        name="Steps", description="Step counts down the column, comma separated ('' = the scene's)", default="",
    )

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "latent_textures")

    def _start(self, context):
        from ..bridge import compare

        settings = context.scene.latent_textures
        axis = settings.compare_axis if self.axis == "SCENE" else self.axis
        chosen = settings.compare_schedulers
        schedulers = self.schedulers or ", ".join(name for name, *_ in SCHEDULER_ITEMS if name in chosen)
        try:
            plan, grid = compare.plan_from_settings(
                context, self.guidance or settings.compare_guidance, axis, schedulers,
                self.steps or settings.compare_steps,
            )
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return None
        return compare.CompareRun(plan, grid)
