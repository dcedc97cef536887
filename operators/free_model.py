"""``latent_textures.free_model``: give the loaded model's memory back."""

import bpy


class LATENT_TEXTURES_OT_free_model(bpy.types.Operator):
    bl_idname = "latent_textures.free_model"
    bl_label = "Free Model"
    bl_description = "Release the loaded model and the (GPU) memory it holds"

    def execute(self, context):
        from ..bridge.job import current_job
        from ..engine import loaded_engine

        if current_job() is not None:
            self.report({"ERROR"}, "A generation is running: cancel it before freeing the model")
            return {"CANCELLED"}
        engine = loaded_engine()
        info = engine.loaded_model() if engine is not None else None
        if info is None:
            self.report({"INFO"}, "No model is loaded")
            return {"FINISHED"}
        engine.free()
        self.report({"INFO"}, f"Freed {info.source} ({info.device}, {info.dtype})")
        return {"FINISHED"}
