"""``latent_textures.cancel_dependency_install``: stop a running dependency install; the previous packages stay."""

import bpy


class LATENT_TEXTURES_OT_cancel_dependency_install(bpy.types.Operator):
    bl_idname = "latent_textures.cancel_dependency_install"
    bl_label = "Cancel Install"
    bl_description = "Stop pip; the packages installed before stay as they were"

    @classmethod
    def poll(cls, context):
        """Only while an install runs."""
        from ..dependencies.state import STATE

        return STATE.installing

    def execute(self, context):
        from ..dependencies.state import STATE

        if not STATE.installing:
            self.report({"WARNING"}, "No install is running")
            return {"CANCELLED"}
        STATE.install.cancel()
        self.report({"INFO"}, "Cancelling the install…")
        return {"FINISHED"}
