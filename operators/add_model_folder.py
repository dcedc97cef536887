"""``latent_textures.add_model_folder``: add a folder of models to the preferences (not scanned until asked)."""

import os

import bpy


class LATENT_TEXTURES_OT_add_model_folder(bpy.types.Operator):
    bl_idname = "latent_textures.add_model_folder"
    bl_label = "Add Model Folder"
    bl_description = "Add a folder of models (e.g. ComfyUI's models/checkpoints) to search for checkpoints, LoRAs and ControlNets"

    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})

    def invoke(self, context, event):
        if self.directory:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from ..preferences import get_preferences

        path = os.path.normpath(bpy.path.abspath(self.directory)) if self.directory else ""
        if not path or not os.path.isdir(path):
            self.report({"ERROR"}, f"Not a folder: {self.directory or '(nothing chosen)'}")
            return {"CANCELLED"}
        prefs = get_preferences(context)
        if path in (os.path.normpath(p) for p in prefs.model_folder_paths()):
            self.report({"INFO"}, f"{path} is already a model folder")
            return {"FINISHED"}
        prefs.model_folders.add().path = path
        context.preferences.is_dirty = True
        return {"FINISHED"}
