"""``latent_textures.cancel_model_download``: stop a model download."""

import bpy


class LATENT_TEXTURES_OT_cancel_model_download(bpy.types.Operator):
    bl_idname = "latent_textures.cancel_model_download"
    bl_label = "Cancel Download"
    bl_description = "Stop downloading this model (the part already fetched stays in the cache until removed)"

    repo_id: bpy.props.StringProperty(
        name="Model", description="The repo id whose download to stop (empty: every running download)",
        default="", options={"SKIP_SAVE"},
    )

    @classmethod
    def poll(cls, context):
        """Only while a download runs."""
        from ..dependencies.state import STATE

        return STATE.downloading()

    def execute(self, context):
        from ..dependencies.state import STATE

        jobs = [job for repo_id, job in STATE.downloads.items()
                if job.running and (not self.repo_id or repo_id == self.repo_id)]
        if not jobs:
            self.report({"WARNING"}, f"{self.repo_id or 'No model'} is not downloading")
            return {"CANCELLED"}
        for job in jobs:
            job.cancel()
        self.report({"INFO"}, f"Cancelling the download of {', '.join(job.repo_id for job in jobs)}…")
        return {"FINISHED"}
