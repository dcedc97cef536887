"""``latent_textures.remove_model_folder``: take a folder off the model folders list (its files are untouched)."""

import bpy


class LATENT_TEXTURES_OT_remove_model_folder(bpy.types.Operator):
    bl_idname = "latent_textures.remove_model_folder"
    bl_label = "Remove Model Folder"
    bl_description = "Stop looking for models in this folder (nothing on disk is deleted)"

    index: bpy.props.IntProperty(min=0, options={"SKIP_SAVE"})

    def execute(self, context):
        from ..preferences import get_preferences

        folders = get_preferences(context).model_folders
        if self.index >= len(folders):
            self.report({"ERROR"}, f"There is no model folder number {self.index + 1}")
            return {"CANCELLED"}
        folders.remove(self.index)
        context.preferences.is_dirty = True
        return {"FINISHED"}
