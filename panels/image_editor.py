"""The same essentials in the Image Editor sidebar."""

import bpy

from . import common
from .view3d import SECTIONS as SECTIONS_3D
from .view3d import LatentTexturesPanel, sub_panels


class IMAGE_PT_latent_textures(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Latent Textures"
    bl_space_type = "IMAGE_EDITOR"

    def draw(self, context):
        settings = context.scene.latent_textures
        image = getattr(context.space_data, "image", None)
        if image is not None and "latent_textures" in image:
            self.layout.operator("latent_textures.use_image_settings", icon="IMPORT")
        common.draw_prompt(self.layout, settings)
        common.draw_input(self.layout, settings)
        common.draw_generate(self.layout, settings)


# The model and LoRA lists are set up in the 3D View; the Image Editor shows what works on an image.
SECTIONS = tuple(section for section in SECTIONS_3D
                 if section[0] in ("sampling", "control", "reference", "upscale", "material_maps", "insight"))

classes = (IMAGE_PT_latent_textures, *sub_panels("IMAGE", "IMAGE_EDITOR", SECTIONS))
