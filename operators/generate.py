"""``latent_textures.generate``: run the scene's settings and put the texture in place."""

import bpy

from .job_modal import JobOperator


class LATENT_TEXTURES_OT_generate(JobOperator, bpy.types.Operator):
    bl_idname = "latent_textures.generate"
    bl_label = "Generate"
    bl_description = "Generate a texture from the prompt (Esc cancels)"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        """Needs a scene with the add-on's settings."""
        return context.scene is not None and hasattr(context.scene, "latent_textures")

    def _start(self, context):
        from ..bridge import targets

        try:
            plan = targets.prepare(context)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return None
        return targets.start(plan)
