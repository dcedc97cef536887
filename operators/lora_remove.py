"""``latent_textures.lora_remove``: remove a LoRA from the list."""

import bpy


class LATENT_TEXTURES_OT_lora_remove(bpy.types.Operator):
    bl_idname = "latent_textures.lora_remove"
    bl_label = "Remove LoRA"
    bl_description = "Remove the selected LoRA from the list"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(name="Index", description="The row to remove; -1 = the selected one", default=-1)

    @classmethod
    def poll(cls, context):
        scene = context.scene
        return scene is not None and hasattr(scene, "latent_textures") and len(scene.latent_textures.loras) > 0

    def execute(self, context):
        settings = context.scene.latent_textures
        index = settings.lora_index if self.index < 0 else self.index
        if not 0 <= index < len(settings.loras):
            self.report({"ERROR"}, f"There is no LoRA row {index} (the list has {len(settings.loras)})")
            return {"CANCELLED"}
        settings.loras.remove(index)
        settings.lora_index = max(0, min(settings.lora_index, len(settings.loras) - 1))
        return {"FINISHED"}
