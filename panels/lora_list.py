"""The LoRA list's rows (drawing only)."""

import bpy


class LATENT_TEXTURES_UL_loras(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        sub = row.row(align=True)
        sub.active = item.enabled
        sub.prop(item, "source", text="", emboss=True)
        sub.prop(item, "weight", text="")


classes = (LATENT_TEXTURES_UL_loras,)
