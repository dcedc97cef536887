"""``latent_textures.lora_add``: add a LoRA to the list (a file picked in the browser, or an empty row)."""

import bpy

from ..engine.request import MAX_LORA_WEIGHT


class LATENT_TEXTURES_OT_lora_add(bpy.types.Operator):
    bl_idname = "latent_textures.lora_add"
    bl_label = "Add LoRA"
    bl_description = "Add a LoRA (.safetensors file); type a Hugging Face repo id into the row instead if you like"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.safetensors", options={"HIDDEN"})
    weight: bpy.props.FloatProperty(name="Weight", default=1.0, min=-MAX_LORA_WEIGHT, max=MAX_LORA_WEIGHT,
                                    options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "latent_textures")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = context.scene.latent_textures
        lora = settings.loras.add()
        lora.source = self.filepath
        lora.weight = self.weight
        settings.lora_index = len(settings.loras) - 1
        return {"FINISHED"}
