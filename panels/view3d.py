"""The "Latent Textures" tab in the 3D View sidebar."""

import bpy

from . import common, reference
from .material_maps import draw_material_maps


class LatentTexturesPanel:
    bl_category = "Latent Textures"
    bl_region_type = "UI"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "latent_textures")


def sub_panels(prefix: str, space_type: str, sections) -> tuple[type, ...]:
    """A closed sub-panel ``{prefix}_PT_latent_textures_{name}`` under the editor's main panel for each
    ``(name, label, draw)`` of ``sections``; it draws ``draw(layout, settings)`` (panels/common.py)."""
    parent = f"{prefix}_PT_latent_textures"

    def panel(name: str, label: str, draw) -> type:
        return type(f"{parent}_{name}", (LatentTexturesPanel, bpy.types.Panel), {
            "bl_label": label,
            "bl_space_type": space_type,
            "bl_parent_id": parent,
            "bl_options": {"DEFAULT_CLOSED"},
            "draw": lambda self, context: draw(self.layout, context.scene.latent_textures),
        })

    return tuple(panel(*section) for section in sections)


class VIEW3D_PT_latent_textures(LatentTexturesPanel, bpy.types.Panel):
    bl_label = "Latent Textures"
    bl_space_type = "VIEW_3D"

    def draw(self, context):
        settings = context.scene.latent_textures
        common.draw_prompt(self.layout, settings)
        common.draw_input(self.layout, settings)
        common.draw_generate(self.layout, settings)


SECTIONS = (
    ("sampling", "Sampling", common.draw_sampling),
    ("model", "Model", common.draw_model),
    ("control", "Control", common.draw_control),
    ("loras", "LoRAs", common.draw_loras),
    ("reference", "Reference", reference.draw_reference),
    ("upscale", "Upscale", common.draw_upscale),
    ("material_maps", "Material Maps", draw_material_maps),
    ("insight", "Insight", common.draw_insight),
)

classes = (VIEW3D_PT_latent_textures, *sub_panels("VIEW3D", "VIEW_3D", SECTIONS))
