"""The same essentials in the Image Editor sidebar."""

import bpy

from . import common
from .view3d import LatentTexturesPanel


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


class IMAGE_PT_latent_textures_sampling(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Sampling"
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "IMAGE_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_sampling(self.layout, context.scene.latent_textures)


class IMAGE_PT_latent_textures_control(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Control"
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "IMAGE_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_control(self.layout, context.scene.latent_textures)


class IMAGE_PT_latent_textures_upscale(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Upscale"
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "IMAGE_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_upscale(self.layout, context.scene.latent_textures)


class IMAGE_PT_latent_textures_insight(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Insight"
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "IMAGE_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_insight(self.layout, context.scene.latent_textures)


classes = (IMAGE_PT_latent_textures, IMAGE_PT_latent_textures_sampling, IMAGE_PT_latent_textures_control,
           IMAGE_PT_latent_textures_upscale,
           IMAGE_PT_latent_textures_insight)
