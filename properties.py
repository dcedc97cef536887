"""Scene settings: ``bpy.types.Scene.latent_textures`` (names fixed by the contract)."""

import bpy

from .engine.request import MAX_CONTROL_STRENGTH, MAX_LORA_WEIGHT, MAX_MASK_BLUR

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
GUIDANCE_WARNING_ABOVE = 15.0
# Blender's IntProperty is a signed 32-bit integer.
MAX_SEED = 2**31 - 1

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
SCHEDULER_ITEMS = (
    ("DPM_SOLVER_MULTISTEP", "DPM++ 2M", "Fast, good quality in 20-30 steps"),
    ("DPM_SOLVER_MULTISTEP_KARRAS", "DPM++ 2M Karras", "DPM++ 2M with Karras sigmas: cleaner at low step counts"),
    ("DDIM", "DDIM", "Deterministic, the classic choice"),
    ("EULER", "Euler", "Simple and fast"),
    ("EULER_ANCESTRAL", "Euler Ancestral", "Adds fresh noise each step: more variety, does not converge"),
    ("PNDM", "PNDM", "Stable Diffusion's original default"),
    ("LCM", "LCM", "For latent-consistency (LCM) models: 2-8 steps, guidance 1-2"),
    ("UNIPC", "UniPC", "Fast multistep solver, good at 10-20 steps"),
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

OBJECT_METHOD_ITEMS = (
    ("GRID", "Grid", "All views tiled into one image and generated at once (one palette, one lighting)"),
    ("SEQUENTIAL", "Sequential", "View by view, each inpainting what earlier views did not cover well"),
)

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

CONTROL_ITEMS = (
    ("NONE", "None", "No geometry conditioning"),
    ("DEPTH", "Depth", "Follow the scene's depth seen from the camera (ControlNet)"),
    ("NORMAL", "Normal", "Follow the scene's surface normals seen from the camera (ControlNet)"),
)


class LatentTexturesLora(bpy.types.PropertyGroup):
    """One LoRA of ``LatentTexturesSettings.loras``."""

    source: bpy.props.StringProperty(
        name="LoRA", subtype="FILE_PATH",
        description="A LoRA .safetensors file, or a Hugging Face repo id (org/name)",
    )
    weight: bpy.props.FloatProperty(
        name="Weight", description="How strongly the LoRA applies (1 = as trained, negative = the opposite)",
        default=1.0, min=-MAX_LORA_WEIGHT, max=MAX_LORA_WEIGHT, soft_min=-1.0, soft_max=1.5,
    )
    enabled: bpy.props.BoolProperty(name="Enabled", description="Apply this LoRA", default=True)


class LatentTexturesSettings(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(
        name="Prompt", description="What to paint", default="",
    )
    negative_prompt: bpy.props.StringProperty(
        name="Negative Prompt", description="What to steer away from", default="",
    )
    model: bpy.props.StringProperty(
        name="Model",
        description="A Hugging Face repo id, a local diffusers folder, or a single-file .safetensors checkpoint",
        default=DEFAULT_MODEL,
    )
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
    steps: bpy.props.IntProperty(
        name="Steps", description="Denoising steps", default=25, min=1, max=500, soft_max=100,
    )
    guidance_scale: bpy.props.FloatProperty(
        name="Guidance",
        description="How strongly the prompt is followed (classifier-free guidance); 1 or less turns it off",
        default=7.5, min=0.0, max=30.0, soft_max=GUIDANCE_WARNING_ABOVE, precision=1, step=50,
    )
    scheduler: bpy.props.EnumProperty(name="Scheduler", items=SCHEDULER_ITEMS, default="DPM_SOLVER_MULTISTEP")
    seed: bpy.props.IntProperty(
        name="Seed", description="Noise seed; after a run, the seed that was used",
        default=0, min=0, max=MAX_SEED,
    )
    use_random_seed: bpy.props.BoolProperty(
        name="Random Seed", description="Pick a new seed for every run", default=True,
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
    mask_image: bpy.props.PointerProperty(
        name="Mask", type=bpy.types.Image,
        description="Inpaint: white = repaint, black = keep; empty = repaint where the source is transparent",
    )
    mask_blur: bpy.props.IntProperty(
        name="Mask Blur", description="Inpaint: feather the mask's edge by this many pixels",
        default=4, min=0, max=MAX_MASK_BLUR, soft_max=64, subtype="PIXEL",
    )
    control: bpy.props.EnumProperty(
        name="Control", description="Condition on the scene's geometry seen from the scene camera",
        items=CONTROL_ITEMS, default="NONE",
    )
    control_model: bpy.props.StringProperty(
        name="Control Model",
        description="The ControlNet: a Hugging Face repo id, a diffusers folder or a .safetensors file; "
                    "empty = the default for the control and the model's family",
        default="",
    )
    control_strength: bpy.props.FloatProperty(
        name="Control Strength", description="How strongly the geometry steers the image (0 = not at all)",
        default=1.0, min=0.0, max=MAX_CONTROL_STRENGTH, subtype="FACTOR",
    )
    object_views: bpy.props.IntProperty(
        name="Views", description="Whole Object: how many views are placed around the selected objects",
        default=6, min=1, max=16,
    )
    view_collection: bpy.props.PointerProperty(
        name="View Collection", type=bpy.types.Collection,
        description="Whole Object: use this collection's cameras (in name order) as the views instead",
    )
    object_method: bpy.props.EnumProperty(
        name="Method", description="Whole Object: how the views are generated",
        items=OBJECT_METHOD_ITEMS, default="GRID",
    )
    texture_size: bpy.props.IntProperty(
        name="Texture Size", description="Whole Object: width and height of each object's baked texture",
        default=2048, min=256, max=8192, subtype="PIXEL",
    )
    keep_view_images: bpy.props.BoolProperty(
        name="Keep View Images",
        description="Whole Object: keep each view's generated image and control image as packed images",
        default=False,
    )
    loras: bpy.props.CollectionProperty(type=LatentTexturesLora, name="LoRAs")
    lora_index: bpy.props.IntProperty(name="Active LoRA", default=0, min=0)
    # --- insight (docs/insight.md) ---
    record_filmstrip: bpy.props.BoolProperty(
        name="Filmstrip",
        description="Also make a contact sheet of every denoising step: the model's guess of the finished image "
        "and the noisy latent (slower: one extra VAE decode per step)",
        default=False,
    )
    record_attention: bpy.props.BoolProperty(
        name="Attention Maps",
        description="Also make one heat map per prompt word: where in the image the model attended to that word",
        default=False,
    )
    compare_guidance: bpy.props.StringProperty(
        name="Guidance Values",
        description="Comparison grid: the guidance values along the row, comma separated",
        default="1, 3, 7.5, 12, 20",
    )
    compare_axis: bpy.props.EnumProperty(
        name="Rows", description="Comparison grid: what changes from row to row",
        items=(
            ("SCHEDULER", "Schedulers", "One row per scheduler"),
            ("STEPS", "Steps", "One row per step count"),
        ),
        default="SCHEDULER",
    )
    compare_schedulers: bpy.props.EnumProperty(
        name="Schedulers", description="Comparison grid: one row per scheduler",
        items=SCHEDULER_ITEMS, options={"ENUM_FLAG"}, default={"DPM_SOLVER_MULTISTEP", "EULER", "DDIM"},
    )
    compare_steps: bpy.props.StringProperty(
        name="Step Counts", description="Comparison grid: one row per step count, comma separated",
        default="10, 25, 40",
    )


classes = (LatentTexturesLora, LatentTexturesSettings)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.latent_textures = bpy.props.PointerProperty(type=LatentTexturesSettings)


def unregister() -> None:
    del bpy.types.Scene.latent_textures
    _unregister_classes()
