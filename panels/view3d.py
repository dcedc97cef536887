"""The "Latent Textures" tab in the 3D View sidebar."""

import bpy

from . import common


class LatentTexturesPanel:
    bl_category = "Latent Textures"
    bl_region_type = "UI"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "latent_textures")


class VIEW3D_PT_latent_textures(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Latent Textures"
    bl_space_type = "VIEW_3D"

    def draw(self, context):
        settings = context.scene.latent_textures
        common.draw_prompt(self.layout, settings)
        common.draw_input(self.layout, settings)
        common.draw_generate(self.layout, settings)


class VIEW3D_PT_latent_textures_sampling(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Sampling"
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_sampling(self.layout, context.scene.latent_textures)


class VIEW3D_PT_latent_textures_model(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Model"
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_model(self.layout, context.scene.latent_textures)


class VIEW3D_PT_latent_textures_control(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Control"
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_control(self.layout, context.scene.latent_textures)


class VIEW3D_PT_latent_textures_loras(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "LoRAs"
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_loras(self.layout, context.scene.latent_textures)


class VIEW3D_PT_latent_textures_upscale(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Upscale"
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_upscale(self.layout, context.scene.latent_textures)


class VIEW3D_PT_latent_textures_insight(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Insight"
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_latent_textures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        common.draw_insight(self.layout, context.scene.latent_textures)


classes = (VIEW3D_PT_latent_textures, VIEW3D_PT_latent_textures_sampling, VIEW3D_PT_latent_textures_model,
           VIEW3D_PT_latent_textures_control, VIEW3D_PT_latent_textures_loras,
           VIEW3D_PT_latent_textures_upscale,
           VIEW3D_PT_latent_textures_insight)
