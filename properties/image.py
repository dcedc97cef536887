"""What is painted from (mode, source, mask), at which size, and where the result goes."""

import bpy

from ..engine.request import MAX_MASK_BLUR

MODE_ITEMS = (
    ("TXT2IMG", "Text to Image", "Generate from the prompt alone"),
    ("IMG2IMG", "Image to Image", "Start from an image (a render, the viewport or an Image) and repaint it"),
    ("INPAINT", "Inpaint", "Repaint only the masked part of the source (white in the mask, or transparent pixels)"),
)
SOURCE_ITEMS = (
    ("CAMERA", "Camera Render", "Render the scene camera at the requested size"),
    ("VIEWPORT", "Viewport", "The active 3D viewport as you see it (falls back to Camera without a window)"),
    ("IMAGE", "Image", "An existing Image datablock"),
)
SEAMLESS_ITEMS = (
    ("NONE", "None", "An ordinary image"),
    ("X", "X", "Tiles horizontally"),
    ("Y", "Y", "Tiles vertically"),
    ("BOTH", "Both", "Tiles in both directions"),
)
CAPTURE_QUALITY_ITEMS = (
    ("FAST", "Fast", "At most 16 samples, denoised, 5 s render time limit: Blender pauses briefly while it renders"),
    ("SCENE", "Scene", "The scene's own render settings: Blender pauses for as long as a full render takes"),
)
TARGET_ITEMS = (
    ("IMAGE", "Image", "Only create the new image"),
    ("MATERIAL", "Material", "Put the image on the active object's material (Base Color)"),
    ("PROJECT", "Project from Camera", "Project the image onto the selected objects from the scene camera"),
    ("OBJECT", "Whole Object", "Texture the selected objects from several views, baked into their own UV maps"),
)


class ImageSettings:
    """The panel's input and output rows: mode, source, mask, size, seamless, target, result."""

    mode: bpy.props.EnumProperty(name="Mode", items=MODE_ITEMS, default="TXT2IMG")
    source: bpy.props.EnumProperty(
        name="Source", description="The starting image for Image to Image", items=SOURCE_ITEMS, default="CAMERA",
    )
    source_image: bpy.props.PointerProperty(
        name="Source Image", description="The image to start from when Source is Image", type=bpy.types.Image,
    )
    strength: bpy.props.FloatProperty(
        name="Strength",
        description="How much of the source image is repainted (1 = all of it)",
        default=0.6, min=0.01, max=1.0, subtype="FACTOR",
    )
    width: bpy.props.IntProperty(
        name="Width", description="Image width in pixels (a multiple of 8)",
        default=512, min=64, max=4096, soft_max=2048, step=8, subtype="PIXEL",
    )
    height: bpy.props.IntProperty(
        name="Height", description="Image height in pixels (a multiple of 8)",
        default=512, min=64, max=4096, soft_max=2048, step=8, subtype="PIXEL",
    )
    seamless: bpy.props.EnumProperty(
        name="Seamless", description="Make the texture tile", items=SEAMLESS_ITEMS, default="NONE",
    )
    target: bpy.props.EnumProperty(
        name="Target", description="Where the result goes", items=TARGET_ITEMS, default="MATERIAL",
    )
    keep_history: bpy.props.BoolProperty(
        name="Keep History",
        description="Keep earlier results in the material (a new node and UV map per run) instead of "
                    "replacing the previous texture and removing its image",
        default=False,
    )
    capture_quality: bpy.props.EnumProperty(
        name="Capture Quality", description="How the camera is rendered as the source image",
        items=CAPTURE_QUALITY_ITEMS, default="FAST",
    )
    result_image: bpy.props.PointerProperty(
        name="Result", description="The last image generated", type=bpy.types.Image,
    )
    mask_image: bpy.props.PointerProperty(
        name="Mask", type=bpy.types.Image,
        description="Inpaint: white = repaint, black = keep; empty = repaint where the source is transparent",
    )
    mask_blur: bpy.props.IntProperty(
        name="Mask Blur", description="Inpaint: feather the mask's edge by this many pixels",
        default=4, min=0, max=MAX_MASK_BLUR, soft_max=64, subtype="PIXEL",
    )
