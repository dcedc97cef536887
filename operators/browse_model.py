"""``latent_textures.browse_model``: pick a local model (a diffusers folder or a .safetensors file)."""

import os

import bpy


class LATENT_TEXTURES_OT_browse_model(bpy.types.Operator):
    bl_idname = "latent_textures.browse_model"
    bl_label = "Browse Model"
    bl_description = "Pick a diffusers model folder (with model_index.json) or a single-file .safetensors checkpoint"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.safetensors;model_index.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        chosen = resolve_model_choice(bpy.path.abspath(self.filepath), bpy.path.abspath(self.directory))
        if chosen is None:
            self.report({"ERROR"}, "Pick a diffusers model folder (it holds model_index.json) or a .safetensors file")
            return {"CANCELLED"}
        context.scene.latent_textures.model = chosen
        return {"FINISHED"}


def resolve_model_choice(filepath: str, directory: str) -> str | None:
    """The model path a file-browser choice means, or None when it names no model."""
    if filepath.lower().endswith(".safetensors") and os.path.isfile(filepath):
        return filepath
    for folder in (os.path.dirname(filepath) if filepath else "", directory):
        if folder and os.path.isfile(os.path.join(folder, "model_index.json")):
            return os.path.normpath(folder)
    return None
