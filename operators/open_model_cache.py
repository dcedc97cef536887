"""``latent_textures.open_model_cache``: show the model cache folder in the system's file browser."""

import os

import bpy


class LATENT_TEXTURES_OT_open_model_cache(bpy.types.Operator):
    bl_idname = "latent_textures.open_model_cache"
    bl_label = "Open Cache Folder"
    bl_description = "Open the folder downloaded models are stored in (it is created if missing)"

    def execute(self, context):
        from ..dependencies import blender
        from ..preferences import get_preferences

        folder = get_preferences(context).resolved_model_cache_dir()
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            self.report({"ERROR"}, f"Cannot create the model cache folder {folder}: {error}")
            return {"CANCELLED"}
        if bpy.app.background:
            # No desktop to show a file browser on; say where it is instead.
            self.report({"INFO"}, f"Model cache folder: {folder}")
            return {"FINISHED"}
        return bpy.ops.wm.path_open(filepath=folder)
