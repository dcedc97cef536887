"""``latent_textures.upscale``: a result (or any image) x2/x4, redrawn tile by tile by the model."""

import bpy

from ..engine.upscale import MAX_TILE_SIZE, MIN_TILE_SIZE
from ..properties.upscale import UPSCALE_METHOD_ITEMS
from .job_modal import JobOperator

SEAMLESS_ITEMS = (
    ("AUTO", "Auto", "Wrap where the source's recipe says it is seamless"),
    ("NONE", "None", "An ordinary image"),
    ("X", "X", "Wrap around horizontally"),
    ("Y", "Y", "Wrap around vertically"),
    ("BOTH", "Both", "Wrap around both ways"),
)


class LATENT_TEXTURES_OT_upscale(JobOperator, bpy.types.Operator):
    bl_idname = "latent_textures.upscale"
    bl_label = "Upscale"
    bl_description = (
        "Make a larger texture: resize up and let the model redraw it tile by tile at low strength, or paint "
        "it large with the x4 upscaler model (Esc cancels)"
    )
    bl_options = {"REGISTER", "UNDO"}

    image: bpy.props.StringProperty(name="Image", description="The image to upscale (empty: the last result)")
    factor: bpy.props.IntProperty(name="Factor", description="2 or 4", default=4, min=2, max=4)
    seamless: bpy.props.EnumProperty(name="Seamless", items=SEAMLESS_ITEMS, default="AUTO")
    strength: bpy.props.FloatProperty(
        name="Detail Strength",
        description="How much of each tile the model repaints (0 = a plain Lanczos resize)",
        default=0.35, min=0.0, max=1.0, subtype="FACTOR",
    )
    control_model: bpy.props.StringProperty(
        name="Tile ControlNet",
        description="The tile ControlNet that keeps each redrawn tile faithful to the source (repo id, folder or "
                    ".safetensors); empty: lllyasviel/control_v11f1e_sd15_tile for SD 1.x, "
                    "xinsir/controlnet-tile-sdxl-1.0 for SDXL",
        default="",
    )
    tile_size: bpy.props.IntProperty(
        name="Tile Size",
        description="Side of the tiles the model redraws, in pixels: 0 (the model's own resolution, e.g. 512 for "
                    f"SD 1.5, 1024 for SDXL) or a multiple of 8 from {MIN_TILE_SIZE} to {MAX_TILE_SIZE}",
        default=0, min=0, max=MAX_TILE_SIZE, step=8, subtype="PIXEL",
    )
    method: bpy.props.EnumProperty(name="Method", items=UPSCALE_METHOD_ITEMS, default="TILED_DIFFUSION")
    upscaler_model: bpy.props.StringProperty(
        name="x4 Upscaler Model",
        description="x4 Upscaler: the model (repo id or diffusers folder); empty: "
                    "stabilityai/stable-diffusion-x4-upscaler",
        default="",
    )
    noise_level: bpy.props.IntProperty(
        name="Noise Level", description="x4 Upscaler: noise added to the small image (higher: freer, lower: "
                                        "more faithful)",
        default=20, min=0, max=350,
    )
    replace_in_material: bpy.props.BoolProperty(
        name="Replace in Materials",
        description="Show the upscaled image wherever the source image was used in a material",
        default=False,
    )

    @classmethod
    def poll(cls, context):
        """Needs a scene with the add-on's settings."""
        return context.scene is not None and hasattr(context.scene, "latent_textures")

    def _start(self, context):
        from ..bridge import upscale

        try:
            plan = upscale.prepare(context, self.image, self.factor, self.seamless, self.strength,
                                   self.replace_in_material, control_model=self.control_model,
                                   tile_size=self.tile_size, method=self.method,
                                   upscaler_model=self.upscaler_model, noise_level=self.noise_level)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return None
        return upscale.UpscaleRun(plan)
