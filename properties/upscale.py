"""Upscale: a larger copy of a result, tile by tile."""

import bpy

UPSCALE_AFTER_ITEMS = (
    ("NONE", "Off", "Keep the generated size"),
    ("2", "x2", "Twice the width and height"),
    ("4", "x4", "Four times the width and height"),
)
UPSCALE_METHOD_ITEMS = (
    ("TILED_DIFFUSION", "Tiled Diffusion",
     "A Lanczos resize, then your model redraws it tile by tile at low strength (with a tile ControlNet)"),
    ("X4_UPSCALER", "x4 Upscaler",
     "The dedicated upscaling model (stabilityai/stable-diffusion-x4-upscaler) paints the large image from the "
     "small one, tile by tile; x2 halves its x4 result"),
)


class UpscaleSettings:
    """The Upscale section."""

    upscale_after: bpy.props.EnumProperty(
        name="Upscale After Generate",
        description="Upscale every new result right away (the model redraws it tile by tile)",
        items=UPSCALE_AFTER_ITEMS, default="NONE",
    )
    upscale_strength: bpy.props.FloatProperty(
        name="Detail Strength",
        description="How much of each upscaled tile the model repaints: low keeps the image, higher adds "
                    "detail (0 = a plain Lanczos resize)",
        default=0.35, min=0.0, max=1.0, subtype="FACTOR",
    )
    upscale_method: bpy.props.EnumProperty(
        name="Upscale Method", description="How the larger image is made",
        items=UPSCALE_METHOD_ITEMS, default="TILED_DIFFUSION",
    )
    upscale_x4_model: bpy.props.StringProperty(
        name="x4 Upscaler Model",
        description="The x4 upscaler (repo id or diffusers folder); empty: stabilityai/stable-diffusion-x4-upscaler "
                    "(downloaded on first use, about 1.9 GB in half precision)",
        default="",
    )
    upscale_noise_level: bpy.props.IntProperty(
        name="Noise Level",
        description="x4 Upscaler: noise added to the small image before it is painted large (higher: freer, more "
                    "invented detail; lower: more faithful)",
        default=20, min=0, max=350,
    )
    upscale_control_model: bpy.props.StringProperty(
        name="Tile ControlNet",
        description="The tile ControlNet that keeps upscaled tiles faithful (repo id, folder or .safetensors); "
                    "empty: lllyasviel/control_v11f1e_sd15_tile for SD 1.x, xinsir/controlnet-tile-sdxl-1.0 for SDXL",
        default="",
    )
