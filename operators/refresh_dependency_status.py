"""``latent_textures.refresh_dependency_status``: check which engine packages, PyTorch build and devices are there."""

import bpy


class LATENT_TEXTURES_OT_refresh_dependency_status(bpy.types.Operator):
    bl_idname = "latent_textures.refresh_dependency_status"
    bl_label = "Refresh Status"
    bl_description = (
        "Check the installed packages, the PyTorch build and the devices it sees (in a separate Python "
        "process: takes a few seconds), and measure the model cache"
    )

    run_modal: bpy.props.BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        self.run_modal = True
        return self.execute(context)

    def execute(self, context):
        from ..dependencies import blender
        from ..dependencies.state import STATE
        from ..preferences import get_preferences

        prefs = get_preferences(context)
        cache_dir, torch_build = prefs.resolved_model_cache_dir(), prefs.torch_build
        if blender.wants_modal(self, context):
            blender.refresh(cache_dir, torch_build, blocking=False)
            self.report({"INFO"}, "Checking the engine's packages…")
            return {"FINISHED"}
        blender.refresh(cache_dir, torch_build, blocking=True)
        if STATE.status is None:
            self.report({"ERROR"}, STATE.status_error or "The status check gave no answer")
            return {"CANCELLED"}
        self.report({"INFO"}, STATE.status.summary())
        return {"FINISHED"}
