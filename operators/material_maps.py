"""``latent_textures.material_maps``: albedo, roughness, metallic, normal and height maps of any image, wired
where that image is a Base Color."""

import bpy

from ..properties.material_maps import PBR_MAP_ITEMS
from .job_modal import JobOperator


class LATENT_TEXTURES_OT_material_maps(JobOperator, bpy.types.Operator):
    bl_idname = "latent_textures.material_maps"
    bl_label = "Make Material Maps"
    bl_description = (
        "Make material maps of an image (Marigold models) and wire them into every material that shows it as "
        "Base Color: albedo, roughness, metallic, a normal map, height (Esc cancels)"
    )
    bl_options = {"REGISTER", "UNDO"}

    image: bpy.props.StringProperty(name="Image", description="The image to make maps of (empty: the last result)")
    maps: bpy.props.EnumProperty(name="Maps", description="The maps to make (none: the scene's Material Maps)",
                                 items=PBR_MAP_ITEMS, options={"ENUM_FLAG"}, default=set())

    @classmethod
    def poll(cls, context):
        """Needs a scene with the add-on's settings."""
        return context.scene is not None and hasattr(context.scene, "latent_textures")

    def _start(self, context):
        from ..bridge import material_maps

        maps = self.maps or context.scene.latent_textures.pbr_maps
        try:
            plan = material_maps.prepare(context, self.image, maps)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return None
        return material_maps.MaterialMapsRun(plan)
