"""``latent_textures.cancel``: stop the running generation within one denoising step."""

import bpy


class LATENT_TEXTURES_OT_cancel(bpy.types.Operator):
    bl_idname = "latent_textures.cancel"
    bl_label = "Cancel Generation"
    bl_description = "Stop the running generation; nothing is written"

    @classmethod
    def poll(cls, context):
        """Only while a generation runs."""
        from ..bridge.job import current_job

        return current_job() is not None

    def execute(self, context):
        from ..bridge.job import current_job

        job = current_job()
        if job is None:
            self.report({"WARNING"}, "No generation is running")
            return {"CANCELLED"}
        job.cancel()
        self.report({"INFO"}, "Cancelling the generation…")
        return {"FINISHED"}
